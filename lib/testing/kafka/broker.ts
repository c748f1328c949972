import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { checkoutRoot } from "../../util/checkout.ts";
import { freePort, guardServerProcess, portOpen, startOrDestroy } from "../process.ts";
import kafkajs from "kafkajs";

const { Kafka, logLevel } = kafkajs;
/** Where scripts/kafka-jars.sh puts Apache Kafka's jars (resolved from Maven Central). */
export const KAFKA_LIBS = process.env.VIGIL_KAFKA_LIBS ?? path.join(checkoutRoot(), ".vigil/kafka/libs");

export interface KafkaBrokerOptions {
  libsDir?: string;
  /** Kept across stop/start; a fresh temporary directory (removed by destroy) when not given. */
  dataDir?: string;
  port?: number;
  controllerPort?: number;
  heapMb?: number;
  /** Largest record batch the broker accepts; the topic table's largest is 4 MiB. */
  messageMaxBytes?: number;
  startTimeoutMs?: number;
}

/** Why a local broker cannot be run here, or undefined when it can. */
export function kafkaUnavailableReason(libsDir = KAFKA_LIBS): string | undefined {
  const java = spawnSync("java", ["-version"], { stdio: "ignore" });
  if (java.error || java.status !== 0) return "java is not installed (apt-get install default-jre-headless)";
  if (!existsSync(libsDir) || !readdirSync(libsDir).some((f) => /^kafka_2\.13-.*\.jar$/.test(f))) {
    return `the Kafka jars are not in ${libsDir} (run scripts/kafka-jars.sh)`;
  }
  return undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A single-node Apache Kafka broker in KRaft mode (broker and controller in one JVM) on 127.0.0.1, from the jars
 * scripts/kafka-jars.sh fetched. Stop and start keep the port and the log directory, as a restarted broker would.
 */
export class KafkaBroker {
  private proc: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private readonly ownsDataDir: boolean;
  readonly dataDir: string;
  /** How long the last start took until the broker answered group-coordinator requests. */
  startMs = 0;

  private constructor(
    private readonly options: Required<Omit<KafkaBrokerOptions, "dataDir" | "port" | "controllerPort">>,
    readonly port: number,
    readonly controllerPort: number,
    dataDir: string | undefined,
  ) {
    this.ownsDataDir = dataDir === undefined;
    this.dataDir = dataDir ?? mkdtempSync(path.join(tmpdir(), "vigil-kafka-"));
  }

  static async start(options: KafkaBrokerOptions = {}): Promise<KafkaBroker> {
    const libsDir = options.libsDir ?? KAFKA_LIBS;
    const reason = kafkaUnavailableReason(libsDir);
    if (reason) throw new Error(`cannot run a Kafka broker: ${reason}`);
    const broker = new KafkaBroker(
      {
        libsDir,
        heapMb: options.heapMb ?? 320,
        messageMaxBytes: options.messageMaxBytes ?? 8 * 1024 * 1024,
        startTimeoutMs: options.startTimeoutMs ?? 90_000,
      },
      options.port ?? (await freePort()),
      options.controllerPort ?? (await freePort()),
      options.dataDir,
    );
    return startOrDestroy(broker);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  private get logFile() {
    return path.join(this.dataDir, "broker.out");
  }

  private writeConfig(): string {
    const file = path.join(this.dataDir, "server.properties");
    const logs = path.join(this.dataDir, "logs");
    const props = {
      "process.roles": "broker,controller",
      "node.id": "1",
      "controller.quorum.voters": `1@127.0.0.1:${this.controllerPort}`,
      listeners: `PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}`,
      "advertised.listeners": `PLAINTEXT://127.0.0.1:${this.port}`,
      "controller.listener.names": "CONTROLLER",
      "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
      "inter.broker.listener.name": "PLAINTEXT",
      "log.dirs": logs,
      "num.partitions": "1",
      // One node: every internal topic with one replica, and few partitions so the first group join is quick.
      "offsets.topic.replication.factor": "1",
      "offsets.topic.num.partitions": "4",
      "transaction.state.log.replication.factor": "1",
      "transaction.state.log.min.isr": "1",
      "transaction.state.log.num.partitions": "4",
      "share.coordinator.state.topic.replication.factor": "1",
      "share.coordinator.state.topic.min.isr": "1",
      "group.initial.rebalance.delay.ms": "0",
      // Lets tests use short sessions, so a killed member's partitions move in seconds.
      "group.min.session.timeout.ms": "1000",
      // Topics come from `vigil topics create` (or a test), never from a typo.
      "auto.create.topics.enable": "false",
      "message.max.bytes": String(this.options.messageMaxBytes),
      "replica.fetch.max.bytes": String(this.options.messageMaxBytes),
      "socket.request.max.bytes": String(Math.max(104857600, this.options.messageMaxBytes * 4)),
      "num.network.threads": "2",
      "num.io.threads": "2",
    };
    mkdirSync(logs, { recursive: true });
    writeFileSync(
      file,
      Object.entries(props)
        .map(([k, v]) => `${k}=${v}`)
        .join("\n") + "\n",
    );
    return file;
  }

  private java(mainClass: string, args: string[]): string[] {
    return [
      `-Xms64m`,
      `-Xmx${this.options.heapMb}m`,
      "-XX:+UseSerialGC",
      "-XX:MaxDirectMemorySize=256m",
      "-Djava.awt.headless=true",
      "-cp",
      path.join(this.options.libsDir, "*"),
      mainClass,
      ...args,
    ];
  }

  /** Starts the JVM (formatting the log directory the first time) and waits until the broker answers. */
  async start(): Promise<void> {
    if (this.running) return;
    const started = Date.now();
    const config = this.writeConfig();
    if (!existsSync(path.join(this.dataDir, "logs", "meta.properties"))) {
      // KRaft needs a formatted log directory; the cluster id is 16 random bytes, base64url as Kafka writes it.
      const clusterId = randomBytes(16).toString("base64url");
      const format = spawnSync(
        "java",
        // "=": an id may begin with "-", which would otherwise read as an option.
        this.java("kafka.tools.StorageTool", ["format", `--cluster-id=${clusterId}`, "--config", config]),
        { encoding: "utf8", timeout: 60_000 },
      );
      if (format.status !== 0) {
        throw new Error(`formatting the KRaft log directory failed: ${format.stderr || format.stdout}`);
      }
    }
    const out = openSync(this.logFile, "a");
    const proc = spawn("java", this.java("kafka.Kafka", [config]), { stdio: ["ignore", out, out] });
    closeSync(out);
    this.proc = proc;
    this.watchdog = guardServerProcess(proc, "kafka.Kafka");
    try {
      await this.waitReady(started);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.startMs = Date.now() - started;
  }

  private async waitReady(started: number): Promise<void> {
    const deadline = started + this.options.startTimeoutMs;
    const failIfDead = () => {
      if (!this.running) {
        const tail = existsSync(this.logFile) ? readFileSync(this.logFile, "utf8").slice(-2000) : "";
        throw new Error(`the Kafka broker exited during start (code ${this.proc?.exitCode}): ${tail}`);
      }
    };
    while (!(await portOpen(this.port))) {
      failIfDead();
      if (Date.now() > deadline) throw new Error(`the Kafka broker did not open port ${this.port}`);
      await sleep(200);
    }
    // The listener opens before the group coordinator has loaded; it answers "loading" or "not available" for
    // a moment. Asking about a group until it answers covers both.
    const kafka = new Kafka({
      brokers: [this.address],
      clientId: "vigil-test-broker",
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      connectionTimeout: 2_000,
    });
    const admin = kafka.admin();
    try {
      for (;;) {
        failIfDead();
        try {
          await admin.connect();
          await admin.describeGroups(["vigil-broker-ready"]);
          return;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`the Kafka broker did not become ready: ${String(err)}`);
          await sleep(250);
        }
      }
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  /** SIGTERM (a clean shutdown), SIGKILL if it takes longer than `graceMs`; the log directory is kept. */
  async stop(graceMs = 15_000): Promise<void> {
    const proc = this.proc;
    this.watchdog?.kill("SIGKILL");
    this.watchdog = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Kills the JVM outright, as a crashed machine would. */
  async kill(): Promise<void> {
    const proc = this.proc;
    this.watchdog?.kill("SIGKILL");
    this.watchdog = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill("SIGKILL");
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Stops the broker and removes its log directory when this object created it. */
  async destroy(): Promise<void> {
    await this.stop();
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}
