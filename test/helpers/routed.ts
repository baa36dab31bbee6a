import { addUser, makeTestDir, startDaemon, type Daemon, type TestDir } from './daemon.js';
import { startSink, type Sink, type SinkScript } from './sink.js';

/** TOML that routes mail for each domain straight to a sink on loopback (no DNS). */
export function routesTo(port: number, ...domains: string[]): string {
  return domains.map((d) => `[routes."${d}"]\nhost = "127.0.0.1"\nport = ${port}\n`).join('\n');
}

export interface RoutedOptions {
  /** Domains whose mail goes to the sink; default dest.test. */
  readonly domains?: readonly string[];
  /** More TOML; without a [delivery] table of its own, the queue polls every 100 ms. */
  readonly toml?: string;
  /** More TOML in the [submission] table. */
  readonly submission?: string;
  readonly sink?: SinkScript;
  /** The submitting account (default `app`, password `pw`, sending for example.com); false: none. */
  readonly user?:
    { readonly name?: string; readonly domains?: readonly string[]; readonly password?: string } | false;
  /** Runs after the account exists and before the daemon starts (keys, suspensions, rows). */
  readonly prepare?: (t: TestDir, sink: Sink) => Promise<void> | void;
  readonly args?: readonly string[];
}

export interface Routed {
  readonly t: TestDir;
  readonly sink: Sink;
  daemon: Daemon;
  /** Stops the daemon and the sink and removes the test dir. */
  stop(): Promise<void>;
}

/** A sink, and a daemon routed to it: the setup of every delivery test. */
export async function startRoutedDaemon(options: RoutedOptions = {}): Promise<Routed> {
  const sink = await startSink(options.sink);
  const toml = options.toml ?? '';
  const t = makeTestDir(
    `${toml.includes('[delivery]') ? '' : '[delivery]\npoll_interval = "100ms"\n\n'}${toml}\n\n${routesTo(sink.port, ...(options.domains ?? ['dest.test']))}`,
    options.submission ?? '',
  );
  try {
    if (options.user !== false) {
      const u = options.user ?? {};
      addUser(t, u.name ?? 'app', [...(u.domains ?? ['example.com'])], u.password ?? 'pw');
    }
    await options.prepare?.(t, sink);
    const daemon = await startDaemon(t, { args: options.args ?? [] });
    const routed: Routed = {
      t,
      sink,
      daemon,
      async stop() {
        await routed.daemon.stop();
        await sink.close();
        t.cleanup();
      },
    };
    return routed;
  } catch (err) {
    await sink.close();
    t.cleanup();
    throw err;
  }
}
