import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { TestProject } from "vitest/node";
import { KafkaBroker, kafkaUnavailableReason } from "./broker.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the control endpoint below; empty when an outside broker is used or Kafka is switched off. */
    vigilKafkaControl: string;
  }
}

/**
 * One Kafka broker for the whole test run, shared by every test file that needs one and started only when the
 * first of them asks (a run without Kafka tests never starts a JVM). Test files reach it through a small HTTP
 * endpoint on 127.0.0.1, which also lets a test stop and restart it. VIGIL_TEST_KAFKA=host:port uses an outside
 * broker instead; VIGIL_TEST_KAFKA=off skips the Kafka tests.
 */
export default async function setup(project: TestProject) {
  if (process.env.VIGIL_TEST_KAFKA) {
    project.provide("vigilKafkaControl", "");
    return;
  }
  let broker: KafkaBroker | undefined;
  let starting: Promise<KafkaBroker> | undefined;
  let failure: string | undefined;

  const ensure = async (): Promise<KafkaBroker> => {
    if (failure) throw new Error(failure);
    starting ??= (async () => {
      const reason = kafkaUnavailableReason();
      if (reason) throw new Error(reason);
      const started = await KafkaBroker.start();
      process.stderr.write(
        `kafka test broker: ${started.address}, ready in ${(started.startMs / 1000).toFixed(1)} s (pid ${started.pid})\n`,
      );
      return started;
    })().catch((err: Error) => {
      failure = err.message;
      throw err;
    });
    broker = await starting;
    return broker;
  };

  const reply = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const routes: Record<string, () => Promise<object>> = {
    "GET /broker": async () => {
      const b = await ensure();
      // A test that stopped it and failed before starting it again must not take the next files down too.
      if (!b.running) await b.start();
      return { address: b.address };
    },
    "POST /broker/stop": async () => {
      await (await ensure()).stop();
      return {};
    },
    "POST /broker/kill": async () => {
      await (await ensure()).kill();
      return {};
    },
    "POST /broker/start": async () => {
      const b = await ensure();
      await b.start();
      return { address: b.address, startMs: b.startMs };
    },
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const route = routes[`${req.method} ${req.url}`];
    if (!route) return reply(res, 404, { error: "no such route" });
    route().then(
      (body) => reply(res, 200, body),
      (err: Error) => reply(res, 503, { error: err.message }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  project.provide("vigilKafkaControl", `http://127.0.0.1:${port}`);

  return async () => {
    server.close();
    await broker?.destroy();
  };
}
