import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcp } from "node:net";
import os from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { freePort, guardServerProcess } from "../process.ts";

const MOSQUITTO = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].find((p) => existsSync(p));

/** Why no broker can be started here, or undefined when one can. */
export function mosquittoUnavailableReason(): string | undefined {
  return MOSQUITTO
    ? undefined
    : "mosquitto is not installed (Debian package mosquitto; scripts/setup.sh with VIGIL_SETUP_TEST_DEPS=1)";
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcp(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * A real Mosquitto broker for tests: Debian's binary on a free local port, anonymous, no persistence, killed
 * with the test process if that dies first.
 */
export class MosquittoBroker {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly dir: string,
    readonly port: number,
  ) {}

  get url() {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** On a free port, or on `port` (a broker started again where its clients will look for it). */
  static async start(port?: number): Promise<MosquittoBroker> {
    const reason = mosquittoUnavailableReason();
    if (reason) throw new Error(reason);
    port ??= await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), "vigil-mosquitto-"));
    const conf = path.join(dir, "mosquitto.conf");
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    const proc = spawn(MOSQUITTO!, ["-c", conf], { stdio: "ignore" });
    guardServerProcess(proc, "mosquitto");
    const deadline = Date.now() + 10_000;
    while (!(await portOpen(port))) {
      if (Date.now() > deadline || proc.exitCode !== null) {
        proc.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
        throw new Error("mosquitto did not start");
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return new MosquittoBroker(proc, dir, port);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every message a subscriber sees, in order, with the retain flag the broker delivered it with. */
export async function mqttSubscriber(
  url: string,
  topics: string[],
): Promise<{ client: MqttClient; messages: { topic: string; payload: string; retain: boolean }[] }> {
  const client = await mqtt.connectAsync(url, { clientId: `watch-${Math.random().toString(16).slice(2)}` });
  const messages: { topic: string; payload: string; retain: boolean }[] = [];
  client.on("message", (topic, payload, packet) =>
    messages.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  await client.subscribeAsync(topics, { qos: 1 });
  return { client, messages };
}
