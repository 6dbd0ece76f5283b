/**
 * Supervises Squid, the entrypoint's only long-lived child.
 *
 * Process model: tini is PID 1 and reaps any orphan (helpers whose Squid
 * died are re-parented to it); Deno cannot wait on processes it did not
 * spawn. The entrypoint spawns Squid in the foreground (`-N`, one process,
 * no PID-file polling) and awaits its status in exactly one place.
 *
 * Signal listeners only record the signal and wake the loop; the loop
 * decides. SIGTERM and SIGINT start a graceful shutdown: readiness turns
 * to 503 at once, Squid gets SIGTERM and stops accepting while in-flight
 * transfers finish. Squid waits its whole `shutdown_lifetime` after
 * SIGTERM even when idle, and closed its manager port, so the in-flight
 * count is read from the cache manager just before: with nothing in
 * flight Squid gets SIGINT (its fast shutdown) at once; otherwise after
 * the drain period. SIGKILL follows if it still lingers. SIGHUP validates the config
 * first and asks Squid to reconfigure only when it is valid.
 *
 * @module
 */

import * as log from "./log.ts";
import { spawnOrExplain } from "./squid.ts";

/** Log lines operators grep for, kept from the legacy image. */
export const MSG_SHUTDOWN =
  "Received shutdown signal, initiating graceful shutdown...";
export const MSG_STOPPING = "Shutting down Squid...";
export const MSG_DIED = "Squid process died unexpectedly";

/** After SIGINT, how long Squid gets to close before SIGKILL. */
const FAST_SHUTDOWN_MS = 3000;

const WATCHED: Deno.Signal[] = ["SIGTERM", "SIGINT", "SIGHUP"];

/** What the supervisor needs from the rest of the entrypoint. */
export interface SupervisorOptions {
  squidBin: string;
  args: string[];
  /** How long in-flight transfers may take on shutdown. */
  drainMs: number;
  /** Client transactions in flight; undefined when it cannot be told. */
  countActiveRequests(): Promise<number | undefined>;
  /** Validates the config for a reload; returns the problems found. */
  validateReload(): Promise<string[]>;
}

/** Owns the Squid child process from spawn to exit. */
export class Supervisor {
  #options: SupervisorOptions;
  #child?: Deno.ChildProcess;
  #status?: Deno.CommandStatus;
  #exit?: Promise<Deno.CommandStatus>;
  #signals: Deno.Signal[] = [];
  #wake = Promise.withResolvers<void>();
  #draining = false;
  #reloads = 0;
  #reloadFailures = 0;

  constructor(options: SupervisorOptions) {
    this.#options = options;
  }

  /** Spawns Squid with inherited stdio and returns its PID. */
  spawn(): number {
    const bin = this.#options.squidBin;
    this.#child = spawnOrExplain(bin, () =>
      new Deno.Command(bin, {
        args: this.#options.args,
        stdin: "null",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn());
    this.#exit = this.#child.status.then((status) => {
      this.#status = status;
      return status;
    });
    return this.#child.pid;
  }

  /** Undefined while Squid runs, else the reason for health replies. */
  squidProblem(): string | undefined {
    if (!this.#child) return "Squid has not started yet";
    if (this.#status) return `Squid is not running (${describe(this.#status)})`;
    return undefined;
  }

  /** True from the first moment of a shutdown. */
  draining(): boolean {
    return this.#draining;
  }

  /**
   * Watches Squid and the signals until Squid exits; returns the exit
   * code for the container: 0 after a requested shutdown, non-zero when
   * Squid died on its own.
   */
  async run(): Promise<number> {
    const exit = this.#exit;
    if (!exit) throw new TypeError("Supervisor.run() called before spawn()");

    const listeners = WATCHED.map((signal) => {
      const record = () => {
        this.#signals.push(signal);
        this.#wake.resolve();
      };
      Deno.addSignalListener(signal, record);
      return { signal, record };
    });

    try {
      while (true) {
        const event = await Promise.race([exit, this.#wake.promise]);
        if (event) return this.#died(event);

        this.#wake = Promise.withResolvers<void>();
        const signals = this.#signals.splice(0);
        if (signals.includes("SIGTERM") || signals.includes("SIGINT")) {
          return await this.#shutdown();
        }
        if (signals.includes("SIGHUP")) await this.#reload();
      }
    } finally {
      for (const { signal, record } of listeners) {
        Deno.removeSignalListener(signal, record);
      }
    }
  }

  #died(status: Deno.CommandStatus): number {
    log.error(`${MSG_DIED} (${describe(status)})`);
    return status.code === 0 ? 1 : status.code;
  }

  async #shutdown(): Promise<number> {
    this.#draining = true;
    const started = performance.now();
    const elapsed = () =>
      `${((performance.now() - started) / 1000).toFixed(1)} s`;
    log.info(MSG_SHUTDOWN);
    log.info(MSG_STOPPING);

    const active = await this.#options.countActiveRequests();
    this.#signalSquid("SIGTERM");
    if (active === 0) {
      log.info("No transfers in flight; stopping Squid now");
    } else {
      log.info(
        `Waiting up to ${this.#options.drainMs / 1000} s for ` +
          `${active ?? "an unknown number of"} transfer(s) to finish...`,
      );
      if (await this.#exitsWithin(this.#options.drainMs)) {
        log.info(`Squid exited after ${elapsed()}`);
        return 0;
      }
      log.warn(
        `Drain period over after ${elapsed()}; closing remaining ` +
          "connections (raise CEPHALOPROXY_DRAIN_SECONDS to wait longer)",
      );
    }
    this.#signalSquid("SIGINT");
    if (await this.#exitsWithin(FAST_SHUTDOWN_MS)) {
      log.info(`Squid exited after ${elapsed()}`);
      return 0;
    }

    log.warn(`Squid did not exit after ${elapsed()}; killing it`);
    this.#signalSquid("SIGKILL");
    await this.#exit;
    return 0;
  }

  async #reload(): Promise<void> {
    log.info("Reload requested (SIGHUP); validating configuration first...");
    const problems = await this.#options.validateReload();
    if (problems.length > 0) {
      this.#reloadFailures++;
      for (const problem of problems) log.error(problem);
      log.error(
        "Configuration reload rejected; Squid keeps running with the " +
          "previous configuration. Fix the errors above and send SIGHUP again",
      );
      return;
    }
    this.#signalSquid("SIGHUP");
    this.#reloads++;
    log.info("Configuration valid; Squid is reconfiguring");
  }

  async #exitsWithin(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([this.#exit!.then(() => true), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  #signalSquid(signal: Deno.Signal): void {
    try {
      this.#child?.kill(signal);
    } catch (err) {
      // kill() throws TypeError once the child has exited; nothing to do.
      if (!(err instanceof TypeError)) throw err;
    }
  }

  /**
   * Asks the loop for a reload as if SIGHUP had arrived: the config is
   * validated again before Squid is told.
   */
  requestReload(): void {
    this.#signals.push("SIGHUP");
    this.#wake.resolve();
  }

  /** Reloads passed to Squid so far. */
  reloads(): number {
    return this.#reloads;
  }

  /** Reloads refused because the new config was invalid. */
  reloadFailures(): number {
    return this.#reloadFailures;
  }
}

function describe(status: Deno.CommandStatus): string {
  return status.signal
    ? `killed by ${status.signal}, exit code ${status.code}`
    : `exit code ${status.code}`;
}
