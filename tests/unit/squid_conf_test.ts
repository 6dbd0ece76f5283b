import assert from "node:assert/strict";
import { join } from "node:path";
import {
  args,
  type Directive,
  expandGlob,
  findAll,
  readSquidConf,
  type Token,
  tokenize,
  where,
} from "../../src/squid_conf.ts";
import {
  type ErrorClass,
  fixture,
  sanitized,
  throwsError,
  writeFiles,
} from "./_helpers.ts";

/** A directive as "line: name args...", for compact comparisons. */
function summarize(directive: Directive): string {
  return `${directive.line}: ${[directive.name, ...args(directive)].join(" ")}`;
}

Deno.test(
  "readSquidConf() skips comments and blank lines and joins continuations",
  sanitized({ read: true }),
  () => {
    const path = fixture("squid_conf/basic.conf");
    const conf = readSquidConf(path);

    assert.deepEqual(conf.directives.map(summarize), [
      "4: http_port 3128",
      "5: acl localnet src 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16",
      "8: acl localnet src fc00::/7",
      "9: visible_hostname proxy-1",
      '10: logformat custom %ts %>a "%rm" %Ss',
      "11: acl blocked dstdomain /etc/squid/blocked domains.txt",
      "12: error_directory ${no_such_macro}/errors",
      "13: acl localnet src fe80::/10",
    ]);
    assert.equal(conf.path, path);
    assert.deepEqual(conf.files, [path]);
    for (const directive of conf.directives) {
      assert.equal(directive.file, path);
    }
  },
);

Deno.test(
  "readSquidConf() marks quoted parameters and keeps their spaces",
  sanitized({ read: true }),
  () => {
    const conf = readSquidConf(fixture("squid_conf/basic.conf"));

    const [logformat] = findAll(conf, "logformat");
    assert.deepEqual(logformat.tokens, [
      { text: "custom", quoted: false },
      { text: '%ts %>a "%rm"', quoted: true },
      { text: "%Ss", quoted: false },
    ]);
    const blocked = findAll(conf, "acl").find((d) =>
      d.tokens[0].text === "blocked"
    );
    assert.deepEqual(blocked?.tokens.at(-1), {
      text: "/etc/squid/blocked domains.txt",
      quoted: true,
    });
  },
);

Deno.test(
  "readSquidConf() keeps repeated directives in file order",
  sanitized({ read: true }),
  () => {
    const conf = readSquidConf(fixture("squid_conf/basic.conf"));

    const localnet = findAll(conf, "acl")
      .filter((directive) => directive.tokens[0].text === "localnet")
      .map((directive) => [directive.line, args(directive).at(-1)]);
    assert.deepEqual(localnet, [
      [5, "192.168.0.0/16"],
      [8, "fc00::/7"],
      [13, "fe80::/10"],
    ]);
  },
);

Deno.test(
  "readSquidConf() keeps only the directives of taken if/else branches",
  sanitized({ read: true }),
  () => {
    const conf = readSquidConf(fixture("squid_conf/conditionals.conf"));

    assert.deepEqual(conf.directives.map(summarize), [
      "2: http_port 3128",
      "13: cache_dir ufs /var/spool/squid 100 16 256",
      "19: coredump_dir /var/cache/squid",
    ]);
  },
);

Deno.test(
  "readSquidConf() follows include globs in sorted order, then quoted paths",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    try {
      writeFiles(dir, {
        "squid.conf": [
          "http_port 3128",
          `include ${dir}/conf.d/*.conf`,
          `include "${dir}/extra dir/quoted.conf"`,
          "cache_mem 64 MB",
        ].join("\n"),
        "conf.d/20-b.conf":
          `acl b src 10.0.0.2\ninclude ${dir}/nested/*.conf\n`,
        "conf.d/10-a.conf": "# first by name\nacl a src 10.0.0.1\n",
        "conf.d/README": "acl readme src 10.9.9.9\n",
        "conf.d/.hidden.conf": "acl hidden src 10.9.9.8\n",
        "conf.d/dir.conf/inside.conf": "acl inside src 10.9.9.7\n",
        "nested/inner.conf": "\n\nacl inner src 10.0.0.3\n",
        "extra dir/quoted.conf": "acl quoted src 10.0.0.4\n",
      });
      const main = join(dir, "squid.conf");

      const conf = readSquidConf(main);

      assert.deepEqual(
        conf.directives.map((d) => `${where(d)} ${d.name} ${args(d)[0]}`),
        [
          `${main}:1 http_port 3128`,
          `${dir}/conf.d/10-a.conf:2 acl a`,
          `${dir}/conf.d/20-b.conf:1 acl b`,
          `${dir}/nested/inner.conf:3 acl inner`,
          `${dir}/extra dir/quoted.conf:1 acl quoted`,
          `${main}:4 cache_mem 64`,
        ],
      );
      assert.deepEqual(conf.files, [
        main,
        `${dir}/conf.d/10-a.conf`,
        `${dir}/conf.d/20-b.conf`,
        `${dir}/nested/inner.conf`,
        `${dir}/extra dir/quoted.conf`,
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "readSquidConf() includes every pattern of one include line",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    try {
      writeFiles(dir, {
        "squid.conf": `include ${dir}/b.conf ${dir}/a.conf\n`,
        "a.conf": "acl a src 10.0.0.1\n",
        "b.conf": "acl b src 10.0.0.2\n",
      });

      const conf = readSquidConf(join(dir, "squid.conf"));

      assert.deepEqual(conf.directives.map((d) => args(d)[0]), ["b", "a"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "readSquidConf() rejects what Squid's preprocessor rejects, naming file:line",
  sanitized({ read: true, write: true }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    const path = join(dir, "squid.conf");
    const cases: {
      name: string;
      text: string;
      error: ErrorClass<Error>;
      message: string;
    }[] = [
      {
        name: "else without if",
        text: "http_port 3128\nelse\n",
        error: SyntaxError,
        message: `"else" without "if" at ${path}:2`,
      },
      {
        name: "endif without if",
        text: "\nendif\n",
        error: SyntaxError,
        message: `"endif" without "if" at ${path}:2`,
      },
      {
        name: "if without endif",
        text: "if true\nif false\nendif\nhttp_port 3128\n",
        error: SyntaxError,
        message: `"if" at ${path}:1 has no "endif"; close the block`,
      },
      {
        name: "unknown condition",
        text: "http_port 3128\nif ${process_number} > 1\nendif\n",
        error: SyntaxError,
        message: `Cannot evaluate "if 1 > 1" at ${path}:2; Squid accepts ` +
          '"true", "false" or "<value> = <value>"',
      },
      {
        name: "unterminated quote",
        text: 'http_port 3128\nacl x dstdomain "/etc/squid/list\n',
        error: SyntaxError,
        message: `Unterminated quote at ${path}:2; close the "..." parameter`,
      },
      {
        name: "include matching nothing",
        text: `http_port 3128\n\ninclude ${dir}/conf.d/*.conf\n`,
        error: Deno.errors.NotFound,
        message: `"include ${dir}/conf.d/*.conf" at ${path}:3 matches no ` +
          "file; mount the file or remove the include",
      },
      {
        name: "self-include",
        text: `include ${path}\n`,
        error: SyntaxError,
        message: `"include" at ${path}:1 nests deeper than 16 files; ` +
          "look for a file that includes itself",
      },
    ];
    try {
      for (const { name, text, error, message } of cases) {
        await t.step(name, () => {
          Deno.writeTextFileSync(path, text);
          const err = throwsError(() => readSquidConf(path), error);
          assert.equal(err.message, message);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "readSquidConf() names the included file and line of a bad line",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    try {
      writeFiles(dir, {
        "squid.conf": `http_port 3128\ninclude ${dir}/conf.d/*.conf\n`,
        "conf.d/acl.conf": 'acl a src 10.0.0.1\n\nacl b dstdomain "/x\n',
      });

      const err = throwsError(
        () => readSquidConf(join(dir, "squid.conf")),
        SyntaxError,
      );

      assert.ok(
        err.message.includes(`at ${dir}/conf.d/acl.conf:3;`),
        err.message,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "readSquidConf() throws NotFound for a missing file",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    try {
      throwsError(
        () => readSquidConf(join(dir, "squid.conf")),
        Deno.errors.NotFound,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "readSquidConf() counts a continued line at its first physical line",
  sanitized({ read: true, write: true }),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    const path = join(dir, "squid.conf");
    try {
      Deno.writeTextFileSync(
        path,
        "acl a src \\\r\n  10.0.0.1 \\\r\n  10.0.0.2\r\nhttp_port 3128\r\n",
      );

      const conf = readSquidConf(path);

      assert.deepEqual(conf.directives.map(summarize), [
        "1: acl a src 10.0.0.1 10.0.0.2",
        "4: http_port 3128",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({
  name: "readSquidConf() ends a comment at its newline even after a backslash",
  ...sanitized({ read: true, write: true }),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    const path = join(dir, "squid.conf");
    try {
      Deno.writeTextFileSync(
        path,
        "# old: cache_dir ufs C:\\squid\\cache\\\n" +
          "cache_dir ufs /c 100 16 256\n",
      );

      const conf = readSquidConf(path);

      assert.deepEqual(conf.directives.map(summarize), [
        "2: cache_dir ufs /c 100 16 256",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "readSquidConf() reports an include of a directory as a config error",
  ...sanitized({ read: true, write: true }),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    const path = join(dir, "squid.conf");
    try {
      writeFiles(dir, {
        "squid.conf": `http_port 3128\ninclude ${dir}/conf.d\n`,
        "conf.d/a.conf": "acl a src 10.0.0.1\n",
      });

      const err = throwsError(() => readSquidConf(path), Error);

      assert.ok(
        err instanceof SyntaxError || err instanceof Deno.errors.NotFound,
        `validate() handles only SyntaxError and NotFound, got ${err}`,
      );
      assert.ok(err.message.includes(`${path}:2`), err.message);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test(
  "tokenize() splits words and unquotes parameters",
  sanitized({}),
  async (t) => {
    const cases: [string, Token[]][] = [
      ["", []],
      ["  \t ", []],
      ["http_port 3128", [
        { text: "http_port", quoted: false },
        { text: "3128", quoted: false },
      ]],
      ['acl x dstdomain "/a b/c"', [
        { text: "acl", quoted: false },
        { text: "x", quoted: false },
        { text: "dstdomain", quoted: false },
        { text: "/a b/c", quoted: true },
      ]],
      ['"say \\"hi\\""', [{ text: 'say "hi"', quoted: true }]],
      ['""', [{ text: "", quoted: true }]],
      ["a\tb   c", [
        { text: "a", quoted: false },
        { text: "b", quoted: false },
        { text: "c", quoted: false },
      ]],
    ];
    for (const [line, tokens] of cases) {
      await t.step(JSON.stringify(line), () => {
        assert.deepEqual(tokenize(line), tokens);
      });
    }
  },
);

Deno.test(
  "tokenize() names file and line of an unterminated quote",
  sanitized({}),
  () => {
    const err = throwsError(
      () => tokenize('acl x "open \\"', "/etc/squid/squid.conf", 7),
      SyntaxError,
    );
    assert.ok(err.message.includes("at /etc/squid/squid.conf:7;"), err.message);
  },
);

Deno.test(
  "expandGlob() matches files like glob(3), sorted",
  sanitized({ read: true, write: true }),
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    try {
      writeFiles(dir, {
        "conf.d/b.conf": "",
        "conf.d/a.conf": "",
        "conf.d/a1.conf": "",
        "conf.d/c.txt": "",
        "conf.d/.hidden.conf": "",
        "conf.d/dir.conf/x": "",
        "one/site.conf": "",
        "two/site.conf": "",
        "three/other.conf": "",
        "odd/odd[name.conf": "",
      });
      const cases: [string, string[]][] = [
        ["conf.d/*.conf", ["a.conf", "a1.conf", "b.conf"]],
        ["conf.d/?.conf", ["a.conf", "b.conf"]],
        ["conf.d/[ab].conf", ["a.conf", "b.conf"]],
        ["conf.d/[!a]*", ["b.conf", "c.txt"]],
        ["conf.d/.*.conf", [".hidden.conf"]],
        ["*/site.conf", ["one/site.conf", "two/site.conf"]],
        ["conf.d/*.none", []],
        ["missing/*.conf", []],
        ["conf.d/a.conf", ["a.conf"]],
        ["conf.d/z.conf", []],
        ["odd/odd[name.conf", ["odd/odd[name.conf"]],
      ];
      for (const [pattern, names] of cases) {
        await t.step(pattern, () => {
          const base = pattern.startsWith("conf.d/") ? `${dir}/conf.d` : dir;
          assert.deepEqual(
            expandGlob(`${dir}/${pattern}`),
            names.map((name) => `${base}/${name}`),
          );
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({
  name: "expandGlob() skips files where the pattern expects a directory",
  ...sanitized({ read: true, write: true }),
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "squid-conf-test-" });
    try {
      writeFiles(dir, { "squid.conf": "", "one/site.conf": "" });
      const cases: [string, string[]][] = [
        ["*/site.conf", [`${dir}/one/site.conf`]],
        ["*/*.conf", [`${dir}/one/site.conf`]],
        ["squid.conf/site.conf", []],
      ];
      for (const [pattern, paths] of cases) {
        await t.step(pattern, () => {
          assert.deepEqual(expandGlob(`${dir}/${pattern}`), paths);
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
