import assert from "node:assert/strict";
import * as log from "../../src/log.ts";
import { formatLine, type LineSink, setLineSink } from "../../src/log.ts";
import { captureLog, sanitized } from "./_helpers.ts";

const ISO_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \[(\w+)\] (.*)$/;

Deno.test(
  "formatLine() puts the UTC timestamp and the level before the message",
  sanitized({}),
  async (t) => {
    const now = new Date("2026-01-02T03:04:05.678Z");
    const cases: [log.Level, string][] = [
      ["INFO", "2026-01-02T03:04:05.678Z [INFO] Squid started"],
      ["WARN", "2026-01-02T03:04:05.678Z [WARN] Squid started"],
      ["ERROR", "2026-01-02T03:04:05.678Z [ERROR] Squid started"],
    ];
    for (const [level, line] of cases) {
      await t.step(level, () => {
        assert.equal(formatLine(level, "Squid started", now), line);
      });
    }
  },
);

Deno.test(
  "formatLine() stamps the current time by default",
  sanitized({}),
  () => {
    const before = Date.now();
    const line = formatLine("INFO", "now");
    const after = Date.now();

    const match = ISO_LINE.exec(line);
    assert.ok(match, line);
    const stamp = Date.parse(match[1]);
    assert.ok(before <= stamp && stamp <= after, line);
    assert.deepEqual(match.slice(2), ["INFO", "now"]);
  },
);

Deno.test(
  "info(), warn() and error() send formatted lines to the sink",
  sanitized({}),
  () => {
    const capture = captureLog();
    try {
      log.info("one");
      log.warn("two");
      log.error("three");
    } finally {
      capture.restore();
    }

    assert.deepEqual(
      capture.lines.map(({ level, line }) => {
        const match = ISO_LINE.exec(line);
        assert.ok(match, line);
        return [level, match[2], match[3]];
      }),
      [
        ["INFO", "INFO", "one"],
        ["WARN", "WARN", "two"],
        ["ERROR", "ERROR", "three"],
      ],
    );
  },
);

Deno.test("setLineSink() returns the sink it replaces", sanitized({}), () => {
  const first: string[] = [];
  const second: string[] = [];
  const toFirst: LineSink = (_level, line) => first.push(line);
  const toSecond: LineSink = (_level, line) => second.push(line);
  const original = setLineSink(toFirst);
  try {
    assert.equal(setLineSink(toSecond), toFirst);
    log.info("to second");
    assert.equal(setLineSink(toFirst), toSecond);
    log.info("to first");
  } finally {
    assert.equal(setLineSink(original), toFirst);
  }

  assert.deepEqual(first.map((line) => ISO_LINE.exec(line)?.[3]), [
    "to first",
  ]);
  assert.deepEqual(second.map((line) => ISO_LINE.exec(line)?.[3]), [
    "to second",
  ]);
});

Deno.test(
  "info() writes to stdout and warn(), error() to stderr by default",
  sanitized({ read: true, run: true }),
  async () => {
    const module = new URL("../../src/log.ts", import.meta.url).href;
    const script = `import * as log from "${module}";
      log.info("started"); log.warn("careful"); log.error("failed");
      log.print("plain text\\n");`;

    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", script],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();

    const decoder = new TextDecoder();
    const stdout = decoder.decode(output.stdout).split("\n");
    const stderr = decoder.decode(output.stderr).split("\n");
    assert.equal(output.code, 0, stderr.join("\n"));
    assert.match(stdout[0], /^\S+Z \[INFO\] started$/);
    assert.deepEqual(stdout.slice(1), ["plain text", ""]);
    assert.match(stderr[0], /^\S+Z \[WARN\] careful$/);
    assert.match(stderr[1], /^\S+Z \[ERROR\] failed$/);
    assert.deepEqual(stderr.slice(2), [""]);
  },
);
