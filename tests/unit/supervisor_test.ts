/**
 * The supervisor tests deliver real signals to the test process itself
 * (`Deno.kill(Deno.pid, ...)`), and only while `run()` has its listeners
 * installed, so the runner never sees a signal it does not handle. SIGINT
 * is never sent to the test process: `deno test` treats it as Ctrl-C.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  MSG_DIED,
  MSG_SHUTDOWN,
  MSG_STOPPING,
  Supervisor,
  type SupervisorOptions,
} from "../../src/supervisor.ts";
import {
  captureLog,
  fixture,
  type LoggedLine,
  pathExists,
  rejectsError,
  sanitized,
  waitFor,
} from "./_helpers.ts";

const PERMISSIONS = { read: true, write: true, run: true };

/**
 * Whether children of this process start with SIGINT ignored, as under a
 * job started in the background by a non-interactive shell; bash cannot
 * trap a signal ignored on entry, so fake_squid.sh would not see SIGINT.
 */
const SIGINT_IGNORED = await (async () => {
  const output = await new Deno.Command("grep", {
    args: ["^SigIgn:", "/proc/self/status"],
    stdin: "null",
    stdout: "piped",
  }).output();
  const mask = /([0-9a-f]+)\s*$/.exec(new TextDecoder().decode(output.stdout));
  return (BigInt(`0x${mask?.[1] ?? "0"}`) & 2n) !== 0n;
})();

/** Options for a supervisor of `bash ARGS...`; `overrides` replace them. */
function optionsFor(
  args: string[],
  overrides: Partial<SupervisorOptions> = {},
): SupervisorOptions {
  return {
    squidBin: "bash",
    args,
    drainMs: 10_000,
    countActiveRequests: () => Promise.resolve(1),
    validateReload: () => Promise.resolve([]),
    ...overrides,
  };
}

/** The lines fake_squid.sh wrote to `marks`. */
function readMarks(marks: string): string[] {
  if (!pathExists(marks)) return [];
  return Deno.readTextFileSync(marks).trimEnd().split("\n");
}

/** The message part of each captured line. */
function messages(lines: LoggedLine[]): string[] {
  return lines.map(({ level, line }) =>
    `${level} ${line.replace(/^\S+ \[\w+\] /, "")}`
  );
}

/**
 * Starts fake_squid.sh under a supervisor, waits until its traps are set,
 * then starts `run()`. `signal()` sends a signal to the test process and
 * refuses once `run()` has returned and removed its listeners. Disposing
 * of the result kills a fake Squid that is still running.
 */
async function startFakeSquid(
  dir: string,
  rules: string[],
  overrides: Partial<SupervisorOptions> = {},
) {
  const marks = join(dir, "marks");
  const supervisor = new Supervisor(
    optionsFor([fixture("fake_squid.sh"), marks, ...rules], overrides),
  );
  const pid = supervisor.spawn();
  try {
    await waitFor(
      "fake Squid to set its traps",
      () => readMarks(marks).includes("ready"),
    );
  } catch (err) {
    Deno.kill(pid, "SIGKILL");
    await supervisor.run();
    throw err;
  }

  let running = true;
  const result = supervisor.run().finally(() => running = false);
  return {
    supervisor,
    result,
    marks: () => readMarks(marks),
    signal(signal: "SIGTERM" | "SIGHUP") {
      if (!running) throw new Error(`run() ended before ${signal} was sent`);
      Deno.kill(Deno.pid, signal);
    },
    async [Symbol.asyncDispose]() {
      if (running) Deno.kill(pid, "SIGKILL");
      await result;
    },
  };
}

Deno.test(
  "Supervisor.squidProblem() says Squid has not started before spawn()",
  sanitized({}),
  async () => {
    const supervisor = new Supervisor(optionsFor(["-c", "exit 0"]));

    assert.equal(supervisor.squidProblem(), "Squid has not started yet");
    assert.equal(supervisor.draining(), false);
    const err = await rejectsError(() => supervisor.run(), TypeError);
    assert.equal(err.message, "Supervisor.run() called before spawn()");
  },
);

Deno.test(
  "Supervisor.run() returns non-zero when Squid exits by itself",
  sanitized(PERMISSIONS),
  async (t) => {
    const cases: [string, number, string][] = [
      ["exit 3", 3, "exit code 3"],
      ["exit 0", 1, "exit code 0"],
      ["kill -KILL $$", 137, "killed by SIGKILL, exit code 137"],
    ];
    for (const [script, code, description] of cases) {
      await t.step(script, async () => {
        const supervisor = new Supervisor(optionsFor(["-c", script]));
        const capture = captureLog();
        let result: number;
        try {
          assert.ok(supervisor.spawn() > 0);
          result = await supervisor.run();
        } finally {
          capture.restore();
        }

        assert.equal(result, code);
        assert.deepEqual(messages(capture.lines), [
          `ERROR ${MSG_DIED} (${description})`,
        ]);
        assert.equal(
          supervisor.squidProblem(),
          `Squid is not running (${description})`,
        );
        assert.equal(supervisor.draining(), false);
      });
    }
  },
);

Deno.test(
  "Supervisor.run() stops Squid with SIGTERM and returns 0 on SIGTERM",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "supervisor-test-" });
    const capture = captureLog();
    try {
      const drainingWhenCounted: boolean[] = [];
      await using squid = await startFakeSquid(dir, ["TERM=exit"], {
        countActiveRequests: () => {
          drainingWhenCounted.push(squid.supervisor.draining());
          return Promise.resolve(2);
        },
      });
      assert.equal(squid.supervisor.squidProblem(), undefined);
      assert.equal(squid.supervisor.draining(), false);

      squid.signal("SIGTERM");
      const code = await squid.result;

      assert.equal(code, 0);
      assert.deepEqual(drainingWhenCounted, [true]);
      assert.equal(squid.supervisor.draining(), true);
      assert.deepEqual(squid.marks(), ["ready", "TERM"]);
      assert.equal(
        squid.supervisor.squidProblem(),
        "Squid is not running (exit code 0)",
      );
      const logged = messages(capture.lines);
      assert.deepEqual(logged.slice(0, 3), [
        `INFO ${MSG_SHUTDOWN}`,
        `INFO ${MSG_STOPPING}`,
        "INFO Waiting up to 10 s for 2 transfer(s) to finish...",
      ]);
      assert.match(logged[3], /^INFO Squid exited after \d+\.\d s$/);
      assert.equal(logged.length, 4);
    } finally {
      capture.restore();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({
  name: "Supervisor.run() sends SIGINT when the drain period is over",
  ignore: SIGINT_IGNORED,
  ...sanitized(PERMISSIONS),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "supervisor-test-" });
    const capture = captureLog();
    try {
      await using squid = await startFakeSquid(
        dir,
        ["TERM=record", "INT=exit"],
        {
          drainMs: 100,
          countActiveRequests: () => Promise.resolve(undefined),
        },
      );

      squid.signal("SIGTERM");
      const code = await squid.result;

      assert.equal(code, 0);
      assert.deepEqual(squid.marks(), ["ready", "TERM", "INT"]);
      const logged = messages(capture.lines);
      assert.equal(
        logged[2],
        "INFO Waiting up to 0.1 s for an unknown number of transfer(s) " +
          "to finish...",
      );
      assert.match(
        logged[3],
        /^WARN Drain period over after \d+\.\d s; closing remaining connections/,
      );
      assert.match(logged[4], /^INFO Squid exited after /);
    } finally {
      capture.restore();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Supervisor.run() skips the drain period when nothing is in flight",
  ignore: SIGINT_IGNORED,
  ...sanitized(PERMISSIONS),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "supervisor-test-" });
    const capture = captureLog();
    try {
      // A drain period longer than the test's own deadline: waiting for it
      // would time the test out.
      await using squid = await startFakeSquid(
        dir,
        ["TERM=record", "INT=exit"],
        {
          drainMs: 3_600_000,
          countActiveRequests: () => Promise.resolve(0),
        },
      );

      squid.signal("SIGTERM");
      const code = await squid.result;

      assert.equal(code, 0);
      // SIGTERM and SIGINT are sent back to back; bash may run the INT trap
      // (which exits) before the TERM one.
      assert.equal(squid.marks().at(-1), "INT");
      const logged = messages(capture.lines);
      assert.equal(
        logged[2],
        "INFO No transfers in flight; stopping Squid now",
      );
      assert.match(logged[3], /^INFO Squid exited after /);
    } finally {
      capture.restore();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test(
  "Supervisor.run() kills Squid when SIGTERM and SIGINT do not stop it",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "supervisor-test-" });
    const capture = captureLog();
    try {
      await using squid = await startFakeSquid(dir, [
        "TERM=record",
        "INT=record",
      ], {
        drainMs: 50,
      });

      squid.signal("SIGTERM");
      const code = await squid.result;

      assert.equal(code, 0);
      assert.equal(squid.marks()[1], "TERM");
      if (!SIGINT_IGNORED) {
        assert.deepEqual(squid.marks(), ["ready", "TERM", "INT"]);
      }
      assert.equal(
        squid.supervisor.squidProblem(),
        "Squid is not running (killed by SIGKILL, exit code 137)",
      );
      const logged = messages(capture.lines);
      assert.match(
        logged.at(-1)!,
        /^WARN Squid did not exit after \d+\.\d s; killing it$/,
      );
    } finally {
      capture.restore();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "Supervisor.run() forwards SIGHUP once the config validates",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "supervisor-test-" });
    const capture = captureLog();
    try {
      let validations = 0;
      await using squid = await startFakeSquid(
        dir,
        ["HUP=record", "TERM=exit"],
        {
          validateReload: () => {
            validations++;
            return Promise.resolve([]);
          },
        },
      );

      squid.signal("SIGHUP");
      await waitFor("Squid to get SIGHUP", () => squid.marks().includes("HUP"));
      squid.signal("SIGTERM");
      const code = await squid.result;

      assert.equal(code, 0);
      assert.equal(validations, 1);
      assert.equal(squid.supervisor.reloads(), 1);
      assert.equal(squid.supervisor.reloadFailures(), 0);
      assert.deepEqual(squid.marks(), ["ready", "HUP", "TERM"]);
      const [requested, valid] = messages(capture.lines);
      assert.match(requested, /^INFO .*SIGHUP.*validating/i);
      assert.match(valid, /^INFO Configuration valid/);
    } finally {
      capture.restore();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "Supervisor.run() keeps SIGHUP from Squid when the config is invalid",
  sanitized(PERMISSIONS),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "supervisor-test-" });
    const capture = captureLog();
    const rejected = "ERROR Configuration reload rejected; Squid keeps " +
      "running with the previous configuration. Fix the errors above and " +
      "send SIGHUP again";
    try {
      await using squid = await startFakeSquid(
        dir,
        ["HUP=record", "TERM=exit"],
        {
          validateReload: () =>
            Promise.resolve(["Cannot read configuration: bad line"]),
        },
      );

      squid.signal("SIGHUP");
      await waitFor(
        "the reload to be rejected",
        () => messages(capture.lines).includes(rejected),
      );
      assert.equal(squid.supervisor.squidProblem(), undefined);
      squid.signal("SIGTERM");
      const code = await squid.result;

      assert.equal(code, 0);
      assert.equal(squid.supervisor.reloads(), 0);
      assert.equal(squid.supervisor.reloadFailures(), 1);
      assert.deepEqual(squid.marks(), ["ready", "TERM"]);
      const [requested, problem, rejection] = messages(capture.lines);
      assert.match(requested, /^INFO .*SIGHUP.*validating/i);
      assert.equal(problem, "ERROR Cannot read configuration: bad line");
      assert.equal(rejection, rejected);
    } finally {
      capture.restore();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
