import { Command, Option } from "commander";
import { writeFileSync } from "node:fs";
import { evaluateLfw } from "../lib/eval/lfw.ts";
import { EmbeddingCache } from "../lib/eval/embedding-cache.ts";
import { modelCacheDir } from "../lib/config/index.ts";
import { loadHead } from "../lib/vision/models/heads.ts";
import { LOSSES } from "../lib/train/loss-names.ts";
import type { HeadCliOptions, TrainCommandOptions } from "./commands/train.ts";
import { prepareSampleMedia } from "../lib/media/sample-media.ts";
import { progress } from "../lib/telemetry/progress.ts";
import { benchIngest } from "./commands/bench-ingest.ts";
import { benchExport } from "./commands/bench-export.ts";
import { exportCommand, type ExportOptions } from "./commands/export.ts";
import { recordingCommand, type RecordingOptions } from "./commands/recording.ts";
import { followCommand, type FollowOptions } from "./commands/follow.ts";
import { benchVision } from "./commands/bench-vision.ts";
import { benchSearch } from "./commands/bench-search.ts";
import { benchE2e, benchE2eMaxCameras, printMaxCameras, rampStepLine } from "./commands/bench-e2e.ts";
import { benchSoak, printSoak, soakSampleLine } from "./commands/bench-soak.ts";
import { sayAboveProgress, sceneCliOptions } from "./commands/rtsp-scene.ts";
import { benchFrames } from "./commands/bench-frames.ts";
import { benchPipeline } from "./commands/bench-pipeline.ts";
import { benchSmallFaces } from "./commands/bench-small-faces.ts";
import { listModels, pullModels, verifyModels } from "./commands/models.ts";
import { consoleHint, demoConsoleKey } from "./commands/demo-console.ts";
import { calibratePackCommand } from "./commands/calibrate-pack.ts";
import { runEmbedded } from "./commands/run.ts";
import { serveCommand, serviceNames } from "./commands/serve.ts";
import type { AuditOptions } from "./commands/keys.ts";
import type { UnknownsListOptions } from "./commands/unknowns.ts";
import {
  ackCommand,
  alertsCommand,
  cropCommand,
  searchCommand,
  sightingsCommand,
  timelineCommand,
  type AlertsOptions,
  type BrowseOptions,
  type SearchOptions,
} from "./commands/history.ts";
import {
  enrolCommand,
  excludeCommand,
  listPeopleCommand,
  type ExcludeOptions,
  removeCommand,
  thresholdCommand,
} from "./commands/watchlist.ts";
import { configFrom, reportFailure, UsageError, visionFor, type GlobalOptions } from "./context.ts";

const program = new Command();
program
  .name("vigil")
  .description(
    "Live face recognition over many camera streams: watchlist alerts, tracking and history search",
  )
  .option(
    "-c, --config <file>",
    "JSON config file (default: ./vigil.config.json if present, or $VIGIL_CONFIG)",
  )
  .showHelpAfterError();

const globals = () => program.opts<GlobalOptions>();
const action =
  <A extends unknown[]>(fn: (...args: A) => Promise<void> | void) =>
  async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      reportFailure(err);
    }
  };

program
  .command("run")
  .description("run every stage in this process over the in-memory bus")
  .option("-s, --source <url...>", "video file, RTSP/HTTP URL (repeatable; ids cam-1, cam-2, …)", [])
  .option("-w, --watchlist <dir>", "watchlist folder: one sub-folder per person, photos inside")
  .addOption(new Option("--events <format>", "event output").choices(["ndjson", "text"]).default("text"))
  .option("--fps <n>", "frames per second to sample", Number)
  .option("--api <host:port>", "also serve the operator API (keys: vigil keys create), e.g. 127.0.0.1:8080")
  .action(
    action(
      async (opts: {
        source: string[];
        watchlist?: string;
        events: "ndjson" | "text";
        fps?: number;
        api?: string;
      }) => {
        const config = configFrom(globals(), { "ingest.fps": opts.fps });
        const vision = await visionFor(config);
        const { results } = await runEmbedded(config, vision, {
          source: opts.source,
          watchlist: opts.watchlist,
          events: opts.events,
          api: opts.api,
        });
        // A run in which no camera produced anything is a failure scripts must notice.
        if (results.length > 0 && results.every((r) => r.state === "error")) {
          process.stderr.write(
            `vigil: every camera failed (${results.length}); see the camera errors above\n`,
          );
          process.exitCode = 2;
        }
      },
    ),
  );

program
  .command("serve")
  .description(
    `one stage as its own process over the configured bus (bus.kind: "kafka"): ${serviceNames.join(" | ")}`,
  )
  .argument("<stage>", "the stage this process runs")
  .action(
    action(async (stage: string) => {
      // The service has shut down in order; a client library's stray timer must not keep the process alive.
      process.exit(await serveCommand(configFrom(globals()), stage));
    }),
  );

program
  .command("demo")
  .description("the README's main job: sample media (MIT photos from npm) through the embedded pipeline")
  .addOption(new Option("--events <format>", "event output").choices(["ndjson", "text"]).default("text"))
  .option("--api <host:port>", "also serve the operator API and web console, and print an admin key for it")
  .action(
    action(async (opts: { events: "ndjson" | "text"; api?: string }) => {
      const config = configFrom(globals());
      const vision = await visionFor(config);
      const media = await prepareSampleMedia(vision, config.dataDir);
      process.stderr.write(
        `vigil demo: video ${media.video}\nvigil demo: watchlist ${media.watchlistDir} (${media.people.map((p) => p.id).join(", ")})\n`,
      );
      if (opts.api) process.stderr.write(consoleHint(opts.api, await demoConsoleKey(config)));
      await runEmbedded(config, vision, {
        source: [media.video],
        watchlist: media.watchlistDir,
        events: opts.events,
        api: opts.api,
      });
      if (!opts.api)
        process.stderr.write(
          "vigil demo: to see these alerts in the web console: npm run demo -- --api 127.0.0.1:8080\n",
        );
    }),
  );

program
  .command("enroll")
  .description("add photos of a person to the watchlist (or a folder: one sub-folder per person)")
  .argument("[photos...]", "photos of the person")
  .option("--person <id>", "the person's id")
  .option("--name <name>", "display name (default: the id)")
  .option("--folder <dir>", "import a folder with one sub-folder per person")
  .option("--watchlist <id>", "which watchlist", "default")
  .option("--json", "outcomes as JSON")
  .action(
    action(
      async (
        photos: string[],
        opts: { person?: string; name?: string; folder?: string; watchlist: string; json?: boolean },
      ) => {
        const outcomes = await enrolCommand(configFrom(globals()), photos, opts);
        if (!outcomes.some((o) => o.ok)) process.exitCode = 1;
      },
    ),
  );

program
  .command("people")
  .description("list the watchlist")
  .option("--json", "as JSON")
  .action(action((opts: { json?: boolean }) => listPeopleCommand(configFrom(globals()), !!opts.json)));

program
  .command("remove")
  .description("remove a person (and their photos) or one photo from the watchlist")
  .option("--person <id>")
  .option("--photo <person:file>")
  .action(action((opts: { person?: string; photo?: string }) => removeCommand(configFrom(globals()), opts)));

program
  .command("exclude")
  .description(
    '"this is not X": faces like this one (a photo, a false alert, a sighting) stop alerting for X',
  )
  .option("--person <id>", "who it is not (default for --alert / --sighting: the person it was matched to)")
  .option("--image <photo>", "a photo of the face, e.g. a false alert's crop")
  .option("--alert <id>", "the false alert itself")
  .option("--sighting <id>", "a sighting of the face")
  .option("--note <text>")
  .action(
    action(async (opts: ExcludeOptions) => {
      await excludeCommand(configFrom(globals()), opts);
    }),
  );

program
  .command("threshold")
  .description("show or override a watchlist's match threshold (default: the model's calibrated one)")
  .option("--watchlist <id>", "which watchlist", "default")
  .option("--value <cosine>", "threshold to use", Number)
  .option("--clear", "go back to the calibrated threshold")
  .action(
    action((opts: { watchlist: string; value?: number; clear?: boolean }) =>
      thresholdCommand(configFrom(globals()), opts),
    ),
  );

program
  .command("search")
  .description("where has this face been? stored sightings by similarity")
  .requiredOption("--image <photo>", "a photo showing one face")
  .option("--camera <id...>", "only these cameras")
  .option("--since <time>", "ISO time, epoch ms, or 15m / 6h / 3d ago")
  .option("--until <time>")
  .option("--top <k>", "how many", Number, 20)
  .option("--json", "as JSON")
  .action(
    action(async (opts: SearchOptions) => {
      await searchCommand(configFrom(globals()), opts);
    }),
  );

program
  .command("timeline")
  .description("a person's sightings across cameras in time order, consecutive ones per camera merged")
  .option("--person <id>", "by their watchlist matches (or an unknown identity's id)")
  .option("--image <photo>", "by a photo")
  .option("--since <time>")
  .option("--until <time>")
  .option("--merge-gap <seconds>", "merge sightings on one camera closer than this", Number, 60)
  .option("--json", "as JSON")
  .action(
    action(
      async (opts: {
        person?: string;
        image?: string;
        since?: string;
        until?: string;
        mergeGap: number;
        json?: boolean;
      }) => {
        await timelineCommand(configFrom(globals()), { ...opts, mergeGapS: opts.mergeGap });
      },
    ),
  );

program
  .command("follow <id>")
  .description(
    "follow a person (or unknown identity) live: their alerts and sightings on any camera as they come, where they may appear next; every pass of a watchlist person alerts, cool-down or not",
  )
  .option("--for <duration>", "how long (30m, 2h): the follow ends by itself", "1h")
  .option("--poll-ms <ms>", "how often to look for new sightings", Number, 1000)
  .option("--json", "one JSON object a line")
  .action(
    action(async (id: string, opts: FollowOptions) => {
      await followCommand(configFrom(globals()), id, opts);
    }),
  );

program
  .command("export")
  .description(
    "a person's visits as video to hand over: every clip of them, every other face masked, with a manifest of hashes",
  )
  .requiredOption("--person <id>", "a watchlist person's id, or an unknown identity's")
  .option("--from <time>", "ISO time, epoch ms, or 15m / 6h / 3d ago")
  .option("--to <time>")
  .option("--redact <who>", "others: mask every face but theirs; none: the clips as recorded", "others")
  .requiredOption("--out <dir>", "a new (or empty) folder")
  .option("--json", "the manifest as JSON")
  .action(
    action(async (opts: ExportOptions) => {
      await exportCommand(configFrom(globals()), opts);
    }),
  );

program
  .command("recording")
  .description(
    "any span of a camera's recording as one MP4, copied as recorded (record.keep all keeps it whole; run where its ingest records)",
  )
  .requiredOption("--camera <id>", "a recorded camera")
  .requiredOption("--from <time>", "ISO time, epoch ms, or 15m / 6h / 3d ago")
  .requiredOption("--to <time>")
  .requiredOption("--out <file>", "the MP4 to write")
  .action(
    action(async (opts: RecordingOptions) => {
      const cut = await recordingCommand(configFrom(globals()), opts);
      const iso = (ts: number) => new Date(ts).toISOString();
      console.log(`${cut.file}: ${iso(cut.start)} to ${iso(cut.end)}, ${cut.bytes} bytes`);
      for (const g of cut.gaps)
        console.log(`  no video from ${iso(g.from)} to ${iso(g.to)} (the camera or ingest was down)`);
    }),
  );

program
  .command("sightings")
  .description("browse stored sightings newest first, without a photo")
  .option("--camera <id...>", "only these cameras")
  .option("--person <id>", "only sightings matched to this person")
  .option("--since <time>", "ISO time, epoch ms, or 15m / 6h / 3d ago")
  .option("--until <time>")
  .option("--limit <n>", "page size", Number, 50)
  .option("--cursor <cursor>", "the next page, as printed after the previous one")
  .option("--json", "as JSON")
  .action(
    action(async (opts: BrowseOptions) => {
      await sightingsCommand(configFrom(globals()), opts);
    }),
  );

program
  .command("alerts")
  .description("stored alerts newest first, with filters")
  .option("--camera <id...>", "only these cameras")
  .option("--person <id>")
  .option("--watchlist <id>")
  .option("--since <time>", "ISO time, epoch ms, or 15m / 6h / 3d ago")
  .option("--until <time>")
  .option("--open", "only alerts nobody has acknowledged")
  .option("--limit <n>", "page size", Number, 50)
  .option("--cursor <cursor>", "the next page, as printed after the previous one")
  .option("--json", "as JSON")
  .action(
    action(async (opts: AlertsOptions) => {
      await alertsCommand(configFrom(globals()), opts);
    }),
  );

program
  .command("ack")
  .description("acknowledge an alert")
  .argument("<alert-id>")
  .option("--by <name>", "who acknowledges it", process.env.USER ?? "operator")
  .option("--note <text>")
  .action(
    action(async (alertId: string, opts: { by: string; note?: string }) => {
      await ackCommand(configFrom(globals()), alertId, opts);
    }),
  );

program
  .command("crop")
  .description("write the face crop of a sighting or an alert as JPEG")
  .option("--sighting <id>")
  .option("--alert <id>")
  .requiredOption("--out <file.jpg>")
  .action(
    action(async (opts: { sighting?: string; alert?: string; out: string }) => {
      await cropCommand(configFrom(globals()), opts);
    }),
  );

// Unknown identities (issue 10): strangers grouped by face, loaded on use.
const unknowns = program
  .command("unknowns")
  .description("unknown identities: list, show, name, promote to the watchlist, merge, split, delete");
unknowns
  .command("list")
  .description("most recently seen first")
  .option("--camera <id...>", "seen on any of these cameras")
  .option("--since <time>", "last seen at or after (ISO time, epoch ms, or 15m / 6h / 3d ago)")
  .option("--until <time>", "first seen at or before")
  .option("--limit <n>", "page size", Number, 50)
  .option("--cursor <cursor>", "the next page, as printed after the previous one")
  .option("--json", "as JSON")
  .action(
    action(async (opts: UnknownsListOptions) => {
      const { unknownsListCommand } = await import("./commands/unknowns.ts");
      await unknownsListCommand(configFrom(globals()), opts);
    }),
  );
unknowns
  .command("show")
  .description("one identity and its latest sightings")
  .argument("<id>")
  .option("--json", "as JSON")
  .action(
    action(async (id: string, opts: { json?: boolean }) => {
      const { unknownsShowCommand } = await import("./commands/unknowns.ts");
      await unknownsShowCommand(configFrom(globals()), id, opts);
    }),
  );
unknowns
  .command("name")
  .description("name an identity (--clear removes the name)")
  .argument("<id>")
  .argument("[name]")
  .option("--clear", "remove the name")
  .action(
    action(async (id: string, name: string | undefined, opts: { clear?: boolean }) => {
      const { unknownsNameCommand } = await import("./commands/unknowns.ts");
      const { UsageError } = await import("./context.ts");
      if (!name === !opts.clear) throw new UsageError("give a name, or --clear");
      await unknownsNameCommand(configFrom(globals()), id, opts.clear ? null : name!);
    }),
  );
unknowns
  .command("promote")
  .description("enrol an identity's best crops as a watchlist person (the normal quality gate applies)")
  .argument("<id>")
  .option("--person <id>", "the person's id (default: the identity's)")
  .option("--name <name>", "display name (default: the identity's name)")
  .option("--watchlist <id>", "which watchlist (default: the person's, or default)")
  .option("--json", "as JSON")
  .action(
    action(
      async (id: string, opts: { person?: string; name?: string; watchlist?: string; json?: boolean }) => {
        const { unknownsPromoteCommand } = await import("./commands/unknowns.ts");
        await unknownsPromoteCommand(configFrom(globals()), id, opts);
      },
    ),
  );
unknowns
  .command("merge")
  .description("merge identity <from> into <into>")
  .argument("<into>")
  .argument("<from>")
  .action(
    action(async (into: string, from: string) => {
      const { unknownsMergeCommand } = await import("./commands/unknowns.ts");
      await unknownsMergeCommand(configFrom(globals()), into, from);
    }),
  );
unknowns
  .command("split")
  .description("move sightings off an identity into a new one")
  .argument("<id>")
  .argument("<sighting-id...>")
  .action(
    action(async (id: string, sightingIds: string[]) => {
      const { unknownsSplitCommand } = await import("./commands/unknowns.ts");
      await unknownsSplitCommand(configFrom(globals()), id, sightingIds);
    }),
  );
unknowns
  .command("delete")
  .description("delete an identity (its sightings stay, unlabelled)")
  .argument("<id>")
  .action(
    action(async (id: string) => {
      const { unknownsDeleteCommand } = await import("./commands/unknowns.ts");
      await unknownsDeleteCommand(configFrom(globals()), id);
    }),
  );

// The operator API's keys and audit log (issue 10), loaded on use.
const keys = program.command("keys").description("API keys for the operator API: create, list, revoke");
keys
  .command("create")
  .description("make a key and print it once (only its hash is stored)")
  .requiredOption("--role <role>", "viewer | operator | admin")
  .requiredOption("--name <name>", "who or what uses it")
  .option("--rate <n>", "requests per minute for this key (default api.rateLimit.perMinute)", Number)
  .option("--json", 'as JSON: {"key": …}')
  .action(
    action(async (opts: { role: string; name: string; rate?: number; json?: boolean }) => {
      const { keysCreateCommand } = await import("./commands/keys.ts");
      await keysCreateCommand(configFrom(globals()), opts);
    }),
  );
keys
  .command("list")
  .description("every key: id, role, state, last use (never the secret)")
  .option("--json", "as JSON")
  .action(
    action(async (opts: { json?: boolean }) => {
      const { keysListCommand } = await import("./commands/keys.ts");
      await keysListCommand(configFrom(globals()), opts);
    }),
  );
keys
  .command("revoke")
  .description("revoke a key by its id: it stops working at once")
  .argument("<id>")
  .action(
    action(async (id: string) => {
      const { keysRevokeCommand } = await import("./commands/keys.ts");
      await keysRevokeCommand(configFrom(globals()), id);
    }),
  );
program
  .command("audit")
  .description("the append-only audit log: searches, timelines, enrolments, deletions, exports, key changes")
  .option("--since <time>", "ISO time, epoch ms, or 15m / 6h / 3d ago")
  .option("--until <time>")
  .option("--action <name>", "an action or its family: search, timeline, person, key, …")
  .option("--key <id>", "only this API key's entries")
  .option("--limit <n>", "page size", Number, 50)
  .option("--cursor <cursor>", "the next page, as printed after the previous one")
  .option("--verify", "check the hash chain instead: exit 1 if an entry was changed or removed")
  .option("--json", "as JSON")
  .action(
    action(async (opts: AuditOptions) => {
      const { auditCommand } = await import("./commands/keys.ts");
      if (!(await auditCommand(configFrom(globals()), opts))) process.exitCode = 1;
    }),
  );

program
  .command("backup")
  .description(
    "back up the deployment into a new folder: PostgreSQL records, Qdrant collections (or the SQLite files) and the crop store's listing",
  )
  .argument("<dir>")
  .option("--json", "print the manifest as JSON")
  .action(
    action(async (dir: string, opts: { json?: boolean }) => {
      const { backupCommand } = await import("./commands/backup.ts");
      await backupCommand(configFrom(globals()), dir, opts);
    }),
  );
program
  .command("restore")
  .description("restore a backup into an empty deployment (crops are not copied: it says which are missing)")
  .argument("<dir>")
  .option("--json", "as JSON")
  .action(
    action(async (dir: string, opts: { json?: boolean }) => {
      const { restoreCommand } = await import("./commands/backup.ts");
      if (!(await restoreCommand(configFrom(globals()), dir, opts))) process.exitCode = 1;
    }),
  );

program
  .command("records")
  .description("the records database (store.records)")
  .command("adopt")
  .description(
    "copy what a deployment kept elsewhere into its records database, once, when turning store.records on: a Qdrant store's people, thresholds, alerts and checkpoints (safe to repeat), and with --sqlite the API's keys, audit log and webhooks",
  )
  .option(
    "--sqlite <file>",
    "the API's SQLite records file (api.authStorePath) to take keys, audit and webhooks from",
  )
  .option("--json", "as JSON")
  .action(
    action(async (opts: { json?: boolean; sqlite?: string }) => {
      const { adoptCommand } = await import("./commands/backup.ts");
      await adoptCommand(configFrom(globals()), opts);
    }),
  );

// Loaded on use, so other commands never load kafkajs.
const topics = program
  .command("topics")
  .description("Kafka topics from the topic table (bus.kafka.brokers): create, describe");
topics
  .command("create")
  .description("create missing topics: partitions, retention and max message size from the table and config")
  .option("--json", "as JSON")
  .action(
    action(async (opts: { json?: boolean }) => {
      const { topicsCreate } = await import("./commands/topics.ts");
      if (!(await topicsCreate(configFrom(globals()), opts))) process.exitCode = 1;
    }),
  );
topics
  .command("describe")
  .description("each topic's partitions, retention, max size, key and purpose, and the broker's live values")
  .option("--json", "as JSON")
  .action(
    action(async (opts: { json?: boolean }) => {
      const { topicsDescribe } = await import("./commands/topics.ts");
      await topicsDescribe(configFrom(globals()), opts);
    }),
  );

const qdrant = program
  .command("qdrant")
  .description(
    "the Qdrant cluster of store.qdrantUrl: shard copies, and bringing back a node whose disk was lost",
  );
qdrant
  .command("status")
  .description(
    "peers, and each shard's copies and their states (exit 1 when a shard has too few active copies)",
  )
  .action(
    action(async () => {
      const { qdrantStatus } = await import("./commands/qdrant.ts");
      if ((await qdrantStatus(configFrom(globals()))).some((s) => s.short)) process.exitCode = 1;
    }),
  );
qdrant
  .command("forget <peer>")
  .description("remove a lost peer and its copies, so its node can rejoin empty on the same address")
  .action(
    action(async (peer: string) => {
      const { qdrantForget } = await import("./commands/qdrant.ts");
      await qdrantForget(configFrom(globals()), Number(peer));
    }),
  );
qdrant
  .command("repair")
  .description("copy every shard that has too few copies onto peers that hold none")
  .action(
    action(async () => {
      const { qdrantRepair } = await import("./commands/qdrant.ts");
      await qdrantRepair(configFrom(globals()));
    }),
  );

const models = program.command("models").description("the model registry: list, pull and verify packs");
models.command("list").action(action(() => listModels(configFrom(globals()))));
models
  .command("pull")
  .option("--pack <id>", "only this pack's models")
  .action(
    action(async (opts: { pack?: string }) => {
      const failures = await pullModels(configFrom(globals()), opts.pack);
      if (failures.length > 0) process.exitCode = 1;
    }),
  );
models
  .command("verify")
  .option("--pack <id>", "only this pack's models")
  .action(
    action((opts: { pack?: string }) => {
      if (verifyModels(configFrom(globals()), opts.pack) > 0) process.exitCode = 1;
    }),
  );

const evaluate = program.command("eval").description("accuracy evaluation");
evaluate
  .command("lfw")
  .description("LFW verification, the standard n-fold protocol of pairs.txt")
  .requiredOption("--images <dir>", "LFW images folder (<Name>/<Name>_<NNNN>.jpg)")
  .requiredOption("--pairs <file>", "pairs.txt")
  .option("--pack <id>", "model pack to evaluate")
  .option("--no-flip", "no horizontal-flip test-time augmentation")
  .option("--calibrate", "measure and store the operating point of a pack declared in models.packs")
  .option("--folds <n>", "--calibrate: only the first n folds of pairs.txt (at least 2)", Number)
  .option("--far <f>", "--calibrate: target false-accept rate: 1e-3, 1e-4 or 1e-5", Number, 1e-4)
  .option("--head <model id>", "evaluate a head trained by vigil train (applied after the pack's embedder)")
  .option(
    "--train-head",
    "per fold, train a head on the other folds' identities and test on the held-out fold",
  )
  .option("--loss <loss>", `--train-head: the head's loss (${LOSSES.join(", ")})`)
  .option("--s <n>", "--train-head: logit scale", Number)
  .option("--m <n>", "--train-head: margin", Number)
  .option("--dim <n>", "--train-head: output dimension", Number)
  .option("--hidden <n>", "--train-head: units of an optional hidden layer (0: none)", Number)
  .option("--epochs <n>", "--train-head: most epochs (early stopping on held-out identities)", Number)
  .option("--batch <n>", "--train-head: batch size", Number)
  .option("--lr <n>", "--train-head: Adam learning rate", Number)
  .option("--seed <n>", "--train-head: seed of the split and the batches", Number)
  .option("--json", "one JSON object on stdout")
  .option("--out <file>", "also write the full JSON report here")
  .action(
    action(
      async (
        opts: {
          images: string;
          pairs: string;
          pack?: string;
          flip: boolean;
          head?: string;
          trainHead?: boolean;
          calibrate?: boolean;
          folds?: number;
          far: number;
          json?: boolean;
          out?: string;
        } & HeadCliOptions,
      ) => {
        // --no-flip overrides; without it the config (file, VIGIL_EMBED__FLIP) decides, as for every command.
        const config = configFrom(globals(), {
          "models.pack": opts.pack,
          "embed.flip": opts.flip ? undefined : false,
        });
        if (opts.calibrate) {
          if (opts.head || opts.trainHead)
            throw new UsageError(
              "--calibrate measures a declared pack's own embedder; leave out --head and --train-head",
            );
          await calibratePackCommand(config, opts);
          return;
        }
        if (opts.trainHead) {
          if (opts.head) throw new UsageError("--train-head trains its own heads; leave out --head");
          // Loaded only here: tfjs is training code, never part of a run.
          const { evalLfwHeadsCommand } = await import("./commands/train.ts");
          await evalLfwHeadsCommand(config, opts);
          return;
        }
        // --head: the base model's (cached) vectors through the head, as the embed stage applies it.
        const head = opts.head ? loadHead(modelCacheDir(config), opts.head) : undefined;
        if (head && head.manifest.flip !== config.embed.flip)
          throw new UsageError(
            `head ${head.manifest.id} was trained with flip ${head.manifest.flip ? "on" : "off"}`,
          );
        const vision = await visionFor({ ...config, models: { ...config.models, head: undefined } });
        const report = await evaluateLfw(
          vision,
          opts.images,
          opts.pairs,
          (phase, total) => progress(phase, total),
          config.embed.flip,
          EmbeddingCache.inDataDir(config.dataDir, vision.embedder.modelId, config.embed.flip),
          head,
        );
        if (opts.out) writeFileSync(opts.out, JSON.stringify(report, null, 2));
        if (opts.json) {
          console.log(JSON.stringify(report));
          return;
        }
        const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
        console.log(`LFW ${report.protocol}; ${report.pairs} pairs, ${report.images} images`);
        console.log(
          `pack ${report.pack}: detector ${report.detector}, embedder ${report.embedder}, flip ${report.flip ? "on" : "off"}`,
        );
        console.log(
          `accuracy ${pct(report.accuracy)} ± ${pct(report.std)} (folds: ${report.folds.map((f) => pct(f.accuracy)).join(", ")})`,
        );
        console.log(`threshold ${report.threshold.toFixed(4)} (mean of per-fold thresholds)`);
        console.log(
          `TAR ${pct(report.tarAtFar1e3.tar)} at FAR ≤ 1e-3 (${report.tarAtFar1e3.impostorPairs} impostor pairs; threshold ${report.tarAtFar1e3.threshold.toFixed(4)})`,
        );
        console.log(
          `calibration over ${report.calibration[0]?.impostorPairs ?? 0} cross-identity pairs: ${report.calibration.map((c) => `FAR ${c.far} → ${c.threshold.toFixed(4)}`).join(", ")}`,
        );
        console.log(
          `no face detected in ${report.noFace.count} image(s)${report.noFace.count ? `: ${report.noFace.files.slice(0, 10).join(", ")}${report.noFace.count > 10 ? ", …" : ""}; ${report.noFace.fallback}` : ""}`,
        );
        console.log(
          `below the quality gate (kept for the protocol): ${report.belowQualityGate}; ${report.seconds.toFixed(0)} s`,
        );
      },
    ),
  );

// Trained heads (issue 12): a projection head on the base model's embeddings, with a margin loss.
program
  .command("train")
  .description("train a projection head on the base model's embeddings and register it as a new model id")
  .option("--data <dir>", "a folder of identities: one sub-folder per person, photos inside")
  .option("--from-store", "the site's confirmed identities: enrolled people and acknowledged alerts")
  .option("--loss <loss>", `one of ${LOSSES.join(", ")}`, "am-softmax")
  .option("--s <n>", "logit scale (normalised losses)", Number)
  .option("--m <n>", "margin (cosine, angle in radians, SphereFace's multiplier, or a distance)", Number)
  .option("--dim <n>", "output dimension", Number)
  .option("--hidden <n>", "units of an optional hidden layer (0: none)", Number)
  .option("--epochs <n>", "most epochs (early stopping on held-out identities)", Number)
  .option("--batch <n>", "batch size", Number)
  .option("--lr <n>", "Adam learning rate (no weight decay)", Number)
  .option("--seed <n>", "seed of the identity split and the batches", Number)
  .option("--far <n>", "false-accept rate the head's threshold is calibrated at", Number)
  .option("--calibrate <dir>", "also calibrate on this folder of identities' impostor pairs (e.g. LFW)")
  .option("--out <model id>", "the new model id (default <base>+<loss>-<date>)")
  .option("--json", "the run summary as one JSON object on stdout")
  .action(
    action(async (opts: TrainCommandOptions) => {
      const { trainCommand } = await import("./commands/train.ts");
      await trainCommand(configFrom(globals()), opts);
    }),
  );

// Cross-resolution fine-tuning (issue 22): the crop pairs the offline training step reads.
program
  .command("train-data")
  .description("write training data for the offline embedder fine-tuning (scripts/train-embedder)")
  .command("distill")
  .description(
    "clean and degraded crop pairs of every photo, cut by the configured pack (crops.u8 + manifest.json)",
  )
  .requiredOption("--images <dir>", "folder-per-identity photos (e.g. lfw-train/images)")
  .requiredOption("--out <dir>", "where to write crops.u8 and manifest.json")
  .option("--variants <n>", "degraded crops per photo", Number, 4)
  .option("--seed <n>", "seed of the degradation draws", Number, 1)
  .option("--limit <n>", "only the first n photos", Number)
  .action(
    action(async (opts: { images: string; out: string; variants: number; seed: number; limit?: number }) => {
      const { distillDataCommand } = await import("./commands/distill-data.ts");
      await distillDataCommand(configFrom(globals()), opts);
    }),
  );

// Recognition as cameras see faces (issue 14): open-set watchlist figures, quality, the operating point.
evaluate
  .command("watchlist")
  .description("open-set 1:N watchlist protocol: FNIR at FPIR 1% and 0.1%, single images and tracks; rank-1")
  .requiredOption("--images <dir>", "folder-per-identity images (LFW layout)")
  .addOption(
    new Option("--degrade <kind>", "degrade probes as a distant camera would")
      .choices(["none", "surveillance"])
      .default("none"),
  )
  .option("--seed <n>", "seed of the degradation draw", Number, 1)
  .option("--json", "one JSON object on stdout")
  .option("--out <file>", "also write the full JSON report here")
  .action(
    action(async (opts: { images: string; degrade: string; seed: number; json?: boolean; out?: string }) => {
      const { evalWatchlistCommand } = await import("./commands/eval-watchlist.ts");
      await evalWatchlistCommand(configFrom(globals()), opts);
    }),
  );
evaluate
  .command("quality")
  .description("how well face quality predicts recognition: error-versus-reject curves, recognisability fit")
  .requiredOption("--images <dir>", "LFW images folder")
  .requiredOption("--pairs <file>", "pairs.txt")
  .option("--seed <n>", "seed of the surveillance degradation draw", Number, 1)
  .option("--png <file>", "write the error-versus-reject curves as a PNG")
  .option("--refit", "use the coefficients fitted on this run instead of the registry's")
  .option(
    "--save",
    "keep the fitted coefficients for a declared pack's embedder or a trained head (implies --refit)",
  )
  .option("--json", "one JSON object on stdout")
  .action(
    action(
      async (opts: {
        images: string;
        pairs: string;
        seed: number;
        png?: string;
        refit?: boolean;
        save?: boolean;
        json?: boolean;
      }) => {
        const { evalQualityCommand } = await import("./commands/eval-quality.ts");
        await evalQualityCommand(configFrom(globals()), opts);
      },
    ),
  );
evaluate
  .command("threshold")
  .description(
    "the operating point over impostor pairs of LFW, deepface-pairs, faces-bbt and the demo's photos",
  )
  .option("--data <dir>", "development data folder (default $VIGIL_SHARED_DATA or ../shared/data)")
  .option("--far <rate>", "target false-match rate (default: the model's calibrated one)", Number)
  .option("--no-demo", "leave out the demo's photos")
  .option(
    "--gate <live|photo>",
    "faces counted: what live video decides on (live gate and trust rule) or only photo-gate faces",
    "live",
  )
  .option("--json", "one JSON object on stdout")
  .action(
    action(async (opts: { data?: string; far?: number; demo: boolean; gate?: string; json?: boolean }) => {
      const { evalThresholdCommand } = await import("./commands/eval-threshold.ts");
      await evalThresholdCommand(configFrom(globals()), opts);
    }),
  );

// Unknown identities (issue 10): the online assignment, scored on a folder-per-identity set.
evaluate
  .command("cluster")
  .description(
    "online unknown-identity assignment over a folder-per-identity set in random order: BCubed P/R/F1",
  )
  .requiredOption("--images <dir>", "folder-per-identity images (LFW layout)")
  .option("--seed <n>", "seed of the stream's order", Number, 1)
  .option("--min-images <n>", "only identities with at least this many images", Number, 2)
  .option(
    "--threshold <cosine>",
    "join an identity at this similarity (default: the model's calibrated one)",
    Number,
  )
  .option("--json", "one JSON object on stdout (bcubedPrecision, bcubedRecall, bcubedF1, …)")
  .action(
    action(
      async (opts: {
        images: string;
        seed: number;
        minImages: number;
        threshold?: number;
        json?: boolean;
      }) => {
        const { evalClusterCommand } = await import("./commands/eval-cluster.ts");
        await evalClusterCommand(configFrom(globals()), opts);
      },
    ),
  );

// Kubernetes manifests made from Vigil's own tables (issue 9; deploy/k8s).
program
  .command("deploy")
  .description("Kubernetes resources generated from Vigil's tables")
  .command("topics")
  .description("Strimzi KafkaTopic resources for the topic table, as the config sets prefix and partitions")
  .option("--cluster <name>", "the Strimzi Kafka resource (strimzi.io/cluster label)", "vigil")
  .option("--out <file.yaml>", "write the resources here instead of stdout")
  .action(
    action(async (opts: { cluster: string; out?: string }) => {
      const { deployTopicsCommand } = await import("./commands/deploy.ts");
      const configPath = globals().config ?? process.env.VIGIL_CONFIG;
      deployTopicsCommand(configFrom(globals()), { ...opts, configPath });
    }),
  );

const bench = program.command("bench").description("performance benchmarks");
bench
  .command("vision")
  .description("detection and embedding latency on this machine")
  .option("--json", "one JSON object on stdout")
  .option("--runs <n>", "timed runs per measurement", Number, 40)
  .action(
    action(async (opts: { json?: boolean; runs: number }) => {
      const config = configFrom(globals());
      const vision = await visionFor(config);
      const r = await benchVision(config, vision, opts.runs);
      if (opts.json) {
        console.log(JSON.stringify(r));
        return;
      }
      const ms = (v: number) => `${v.toFixed(2)} ms`;
      console.log(
        `pack ${r.pack} (${r.executionProvider}); bench frame: ${r.image}, ${r.facesInBenchFrame} face(s); detector input ≤ ${r.detectorMaxSide}px`,
      );
      console.log(`detect 640×480:   median ${ms(r.detectMs640)}, p95 ${ms(r.detectP95Ms640)}`);
      console.log(`detect 1280×720:  median ${ms(r.detectMs720p)}, p95 ${ms(r.detectP95Ms720p)}`);
      console.log(`embed batch 1:    median ${ms(r.embedMsBatch1)}, p95 ${ms(r.embedP95MsBatch1)} per face`);
      console.log(
        `embed batch 16:   median ${ms(r.embedMsPerFaceBatch16)}, p95 ${ms(r.embedP95MsPerFaceBatch16)} per face`,
      );
    }),
  );

bench
  .command("export")
  .description(
    "a redacted export timed: a 1280×720 clip of a group, every face but one masked (CPU of this process and its ffmpeg decoder and encoder)",
  )
  .option("--seconds <n>", "seconds of video", Number, 20)
  .option("--video <file>", "real footage instead of the still group (letterboxed to 720p, looped)")
  .option("--json", "one JSON object on stdout")
  .action(
    action(async (opts: { seconds: number; video?: string; json?: boolean }) => {
      const config = configFrom(globals());
      const r = await benchExport(config, await visionFor(config), opts.seconds, opts.video);
      if (opts.json) console.log(JSON.stringify(r));
      else
        console.log(
          `redacted ${r.videoSeconds.toFixed(1)} s of ${r.width}×${r.height} from ${r.source} (${r.frames} frames, ${r.facesMasked} face boxes masked): ${r.cpuPerVideoSecond.toFixed(2)} CPU s per video second, realTimePerCore ${r.realTimePerCore.toFixed(2)} (goal ≥ 1)`,
        );
    }),
  );

bench
  .command("ingest")
  .description("N simulated 720p25 RTSP cameras through the camera manager: delivery, decoder CPU, latency")
  .option("--cameras <n>", "number of cameras", Number, 8)
  .option("--seconds <n>", "measured seconds (after a 4 s warm-up)", Number, 20)
  .option("--keyframes-only", "decode keyframes only (one frame per GOP, a fraction of the CPU)")
  .option(
    "--record",
    "then each camera decoded twice side by side, with and without its rolling recording: what the copy adds",
  )
  .option("--json", "one JSON object on stdout")
  .action(
    action(
      async (opts: {
        cameras: number;
        seconds: number;
        keyframesOnly?: boolean;
        record?: boolean;
        json?: boolean;
      }) => {
        const r = await benchIngest(
          configFrom(globals()),
          opts.cameras,
          opts.seconds,
          opts.keyframesOnly ?? false,
          opts.record ?? false,
        );
        if (opts.json) {
          console.log(JSON.stringify(r));
          return;
        }
        console.log(
          `${r.cameras} cameras × 720p25 RTSP sampled at ${r.fps} fps${r.keyframesOnly ? " (keyframes only)" : ""} for ${r.seconds.toFixed(1)} s`,
        );
        console.log(
          `delivered ${r.framesDelivered}/${r.framesExpected} frames: ratio ${r.deliveredRatio.toFixed(3)}`,
        );
        console.log(
          `decoder CPU ${r.cpuPerCamera.toFixed(3)} of a core per camera (RTSP server itself: ${r.serverCpuCores.toFixed(2)} cores)`,
        );
        console.log(
          `bare ffmpeg -f null on the same stream: ${r.decoderBaselineCpu.toFixed(3)} of a core; ingest / decoder ${r.ingestOverDecoder.toFixed(2)}`,
        );
        console.log(
          `p95 latency ingest → consumer ${r.p95LatencyMs.toFixed(1)} ms; p95 lag behind source cadence ${r.p95CadenceLagMs.toFixed(0)} ms`,
        );
        console.log(`reconnects ${r.reconnects}, frames dropped ${r.framesDropped}`);
        if (r.record)
          console.log(
            `recording on: decoder CPU ${r.record.cpuPerCamera.toFixed(3)} of a core per camera against ${r.record.decoderCpuPerCamera.toFixed(3)} without, side by side, ${r.record.segmentsWritten} segments; recordCpuOverDecoder ${r.record.recordCpuOverDecoder.toFixed(3)} (goal ≤ 0.05), delivered ${r.record.deliveredRatio.toFixed(3)}`,
          );
      },
    ),
  );

bench
  .command("search")
  .description(
    "history search latency and recall over N synthetic sightings; watchlist matching at 10k people",
  )
  .option("--sightings <n>", "number of sightings", Number, 100_000)
  .option("--queries <n>", "timed queries", Number, 100)
  .option("--store <kind>", "embedded (in-process index) or qdrant", "embedded")
  .option(
    "--qdrant-url <list>",
    "with --store qdrant: comma-separated node URLs (default: a local Qdrant from ../shared started for the run)",
  )
  .option("--json", "one JSON object on stdout")
  .action(
    action(
      async (opts: {
        sightings: number;
        queries: number;
        store: string;
        qdrantUrl?: string;
        json?: boolean;
      }) => {
        if (opts.store !== "embedded" && opts.store !== "qdrant")
          throw new Error(`--store is embedded or qdrant, not ${opts.store}`);
        const config = configFrom(globals());
        const r = await benchSearch(config, opts.sightings, opts.queries, {
          store: opts.store,
          qdrantUrl: opts.qdrantUrl?.split(","),
          qdrantApiKey: config.store.qdrantApiKey,
        });
        if (opts.json) {
          console.log(JSON.stringify(r));
          return;
        }
        console.log(
          `${r.sightings} sightings × ${r.dim}-D in the ${r.store} store (stored in ${r.buildSeconds.toFixed(0)} s` +
            `${r.qdrant ? `, indexed ${r.qdrant.indexSeconds.toFixed(0)} s more` : ""}), ${r.queries} queries`,
        );
        console.log(
          `search top-10:            p50 ${r.p50Ms.toFixed(1)} ms, p95 ${r.p95Ms.toFixed(1)} ms, recall@10 ${r.recallAt10.toFixed(4)}`,
        );
        console.log(
          `with camera + time filter: p50 ${r.p50FilteredMs.toFixed(1)} ms, p95 ${r.p95FilteredMs.toFixed(1)} ms, recall@10 ${r.recallAt10Filtered.toFixed(4)} (${(r.filterSelectivity * 100).toFixed(1)}% of rows pass)`,
        );
        if (r.indexMemoryMB !== null)
          console.log(
            `index memory ${r.indexMemoryMB.toFixed(0)} MB (int8 + scales + row data); process RSS ${r.rssMB.toFixed(0)} MB`,
          );
        if (r.qdrant) {
          const mb = (x: number | null) =>
            x === null ? "unknown (an outside server)" : `${x.toFixed(0)} MB`;
          console.log(
            `Qdrant (${r.qdrant.url}): server RSS ${mb(r.qdrant.rssMB)}, storage ${mb(r.qdrant.diskMB)}; this process RSS ${r.rssMB.toFixed(0)} MB`,
          );
        }
        if (r.watchlistPeople !== null)
          console.log(
            `watchlist of ${r.watchlistPeople} people × 3 photos: ${r.watchlistMsPerFaceBatch1!.toFixed(2)} ms per face alone, ${r.watchlistMsPerFaceBatch16!.toFixed(2)} ms per face in batches of 16`,
          );
      },
    ),
  );

bench
  .command("gpu")
  .description(
    "GPU throughput: detection and embedding per batch size (CPU beside it), decode streams, cameras at 5 fps end to end",
  )
  .option("--json", "one JSON object on stdout")
  .option("--out <file.json>", "also write the JSON here")
  .option("--frames <file.yuv>", "pre-decoded yuv420p frames, concatenated (hosts without ffmpeg)")
  .option("--frame-size <WxH>", "size of each frame of --frames", "1280x720")
  .option("--video <file>", "face video decoded with ffmpeg instead (default: the talking-head clip)")
  .option("--measure-seconds <s>", "seconds each throughput figure is timed", Number, 1)
  .option("--no-cpu", "skip the CPU figures")
  .option("--no-decode", "skip the decoder measurement")
  .option("--no-e2e", "skip the end-to-end camera ramp")
  .option("--e2e-budget <s>", "wall-clock budget of the camera ramp", Number, 150)
  .option("--e2e-warmup <s>", "unmeasured seconds of traffic before the ramp", Number, 15)
  .option("--e2e-seconds <s>", "measured seconds per camera count (after 3 s warm-up)", Number, 8)
  .option("--start-cameras <n>", "first camera count; doubled while it passes", Number, 8)
  .option("--detect-workers <n>", "detect worker threads in the end-to-end run", Number)
  .action(
    action(async (opts: object) => {
      const { runBenchGpuCommand } = await import("./commands/bench-gpu.ts");
      await runBenchGpuCommand(configFrom(globals()), opts);
    }),
  );

bench
  .command("plumbing")
  .description(
    "the cost of everything around the models: the real pipeline with stand-in models of known cost, ramped at 5 fps per camera",
  )
  .option("--json", "one JSON object on stdout")
  .option(
    "--shape <name...>",
    "detect-align (one detect-align process), embedded (vigil run), service (vigil serve on Kafka)",
    ["detect-align", "embedded", "service"],
  )
  .option("--brokers <list>", "Kafka for the service shape (default: a local broker started for the run)")
  .option(
    "--no-batched-detect",
    "detect one frame a run (the CPU default) instead of in batches (the GPU path)",
  )
  .option("--faces <n>", "faces the stand-in detector finds in every frame", Number, 4)
  .option("--cost-ms <ms>", "time each stand-in model run holds its thread (without CPU)", Number, 0)
  .option("--start-cameras <n>", "first camera count; doubled while it passes", Number, 25)
  .option("--step-seconds <s>", "measured seconds per camera count (after 2 s warm-up)", Number, 5)
  .option("--budget <s>", "wall-clock budget of each shape's ramp", Number, 120)
  .option("--frames <file.yuv>", "pre-decoded yuv420p frames, concatenated")
  .option("--frame-size <WxH>", "size of each frame", "1280x720")
  .option("--video <file>", "face video to decode the frames from (default: the talking-head clip)")
  .action(
    action(
      async (opts: {
        json?: boolean;
        shape: string[];
        faces: number;
        costMs: number;
        startCameras: number;
        stepSeconds: number;
        budget: number;
        brokers?: string;
        batchedDetect: boolean;
        frames?: string;
        frameSize: string;
        video?: string;
      }) => {
        const { benchPlumbing, PLUMBING_GOALS } = await import("./commands/bench-plumbing.ts");
        const [width, height] = opts.frameSize.split("x").map(Number) as [number, number];
        const shapes = opts.shape.map((s) => {
          if (s !== "detect-align" && s !== "embedded" && s !== "service")
            throw new Error(`unknown shape ${s}: detect-align, embedded or service`);
          return s;
        });
        const r = await benchPlumbing(configFrom(globals()), {
          shapes,
          faces: opts.faces,
          costMs: opts.costMs,
          startCameras: opts.startCameras,
          stepSeconds: opts.stepSeconds,
          budgetSeconds: opts.budget,
          brokers: opts.brokers?.split(","),
          batchedDetect: opts.batchedDetect,
          frames: opts.frames,
          video: opts.video,
          width,
          height,
          log: (l) => process.stderr.write(`${l}\n`),
        });
        if (opts.json) {
          console.log(JSON.stringify(r));
          return;
        }
        const mark = (ok: boolean) => (ok ? "meets" : "MISSES");
        console.log(
          `${r.frames.width}×${r.frames.height} frames (${r.frames.source}); stand-in models: ${r.standIn.faces} faces a frame, ${r.standIn.costMs} ms a run; ` +
            `detection ${r.batchedDetect ? `batched by ${r.batchedDetect} (the GPU path)` : "one frame a run"}, ${r.detectWorkers} detect workers; ${r.cores} cores`,
        );
        console.log(`excluded: ${r.excluded}`);
        console.log(
          `alignMsPerFace ${r.alignMsPerFace.toFixed(4)} (${mark(r.alignMsPerFace <= PLUMBING_GOALS.alignMsPerFace)} ≤ ${PLUMBING_GOALS.alignMsPerFace}); quality ${r.qualityMsPerFace.toFixed(4)} ms/face`,
        );
        for (const s of r.shapes) {
          console.log(`${s.shape}: ${s.what}`);
          console.log(
            `  plumbingFramesPerSecond ${s.plumbingFramesPerSecond.toFixed(0)} at ${s.maxCameras} cameras (${mark(s.plumbingFramesPerSecond >= PLUMBING_GOALS.plumbingFramesPerSecond)} ≥ ${PLUMBING_GOALS.plumbingFramesPerSecond}); ` +
              `mainThreadMsPerFrame ${s.mainThreadMsPerFrame.toFixed(3)} (${mark(s.mainThreadMsPerFrame <= PLUMBING_GOALS.mainThreadMsPerFrame)} ≤ ${PLUMBING_GOALS.mainThreadMsPerFrame}); ` +
              `cpuMsPerFrame ${s.cpuMsPerFrame.toFixed(3)} (${mark(s.cpuMsPerFrame <= PLUMBING_GOALS.cpuMsPerFrame)} ≤ ${PLUMBING_GOALS.cpuMsPerFrame})`,
          );
          console.log(`  ${s.note}`);
        }
      },
    ),
  );

bench
  .command("pipeline")
  .description(
    "scale-out over Kafka, every stage its own process: embed scaling from 1 to 2 processes, then RTSP cameras end to end",
  )
  .option("--brokers <list>", "Kafka bootstrap brokers, comma-separated (default: start a local broker)")
  .option("--cameras <n>", "RTSP cameras for the end-to-end run", Number, 4)
  .option("--seconds <n>", "measured seconds end to end (after an 8 s warm-up)", Number, 30)
  .option("--window <n>", "measured seconds per embed-scaling run", Number, 12)
  .option("--faces <n>", "aligned faces published for embed scaling", Number, 3000)
  .option("--store <kind>", "the match stage's store: embedded (SQLite file) or qdrant", "embedded")
  .option(
    "--qdrant-url <list>",
    "with --store qdrant: comma-separated node URLs (default: a local Qdrant from ../shared started for the run)",
  )
  .option("--json", "one JSON object on stdout")
  .action(
    action(
      async (opts: {
        brokers?: string;
        cameras: number;
        seconds: number;
        window: number;
        faces: number;
        store: string;
        qdrantUrl?: string;
        json?: boolean;
      }) => {
        if (opts.store !== "embedded" && opts.store !== "qdrant")
          throw new UsageError(`--store is embedded or qdrant, not ${opts.store}`);
        if (opts.qdrantUrl && opts.store !== "qdrant")
          throw new UsageError("--qdrant-url needs --store qdrant");
        const config = configFrom(globals());
        const r = await benchPipeline(config, await visionFor(config), {
          brokers: opts.brokers?.split(",").map((b) => b.trim()),
          cameras: opts.cameras,
          seconds: opts.seconds,
          windowS: opts.window,
          faces: opts.faces,
          store: opts.store,
          qdrantUrl: opts.qdrantUrl?.split(",").map((u) => u.trim()),
          qdrantApiKey: config.store.qdrantApiKey,
        });
        if (opts.json) {
          console.log(JSON.stringify(r));
          return;
        }
        const where = r.qdrant
          ? ` (${r.qdrant.url}, ${r.qdrant.startedForRun ? "a local server started for the run" : `collections ${r.qdrant.prefix}_* left there`})`
          : "";
        console.log(
          `broker ${r.brokers}; match stage on the ${r.store} store${where}; every stage its own process`,
        );
        console.log(
          `embed: 1 process ${r.facesPerSecond1.toFixed(1)} faces/s, 2 processes ${r.facesPerSecond2.toFixed(1)} faces/s: scaling ${r.embedScaling.toFixed(2)}`,
        );
        console.log(
          `${r.cameras} RTSP cameras at ${r.fps} fps for ${r.seconds.toFixed(1)} s: processed ${r.framesProcessed} of ${r.framesOffered} offered, ratio ${r.processedRatio.toFixed(3)} (${r.framesStale} stale)`,
        );
        console.log(
          `alerts ${r.alerts}: capture → alert p50 ${r.p50AlertMs.toFixed(0)} ms, p95 ${r.p95AlertMs.toFixed(0)} ms`,
        );
        console.log(
          `in the ${r.store} store after the run: ${r.stored.sightings} sightings, ${r.stored.alerts} alerts (warm-up included)`,
        );
      },
    ),
  );

bench
  .command("frames")
  .description("what a 720p frame costs on Kafka in each encoding: bytes, CPU at ingest and at detect-align")
  .option("--frames <n>", "frames to sample (5 fps from the face clip)", Number, 100)
  .option("--json", "one JSON object on stdout")
  .action(
    action(async (opts: { frames: number; json?: boolean }) => {
      const r = await benchFrames(configFrom(globals()), opts.frames);
      if (opts.json) {
        console.log(JSON.stringify(r));
        return;
      }
      console.log(`${r.frames} frames of ${r.source} as ${r.width}×${r.height}`);
      console.log("encoding                                   bytes/frame   ingest CPU   detect-align CPU");
      for (const e of r.results)
        console.log(
          `${e.encoding.padEnd(42)} ${(e.bytesPerFrame / 1024).toFixed(0).padStart(8)} KiB ${e.producerCpuMsPerFrame.toFixed(2).padStart(8)} ms ${e.consumerCpuMsPerFrame.toFixed(2).padStart(12)} ms`,
        );
    }),
  );

bench
  .command("small-faces")
  .description(
    "faces found per frame of a crowd clip vs CPU per frame: detector input sizes, a second pass, tiles",
  )
  .option("--video <file>", "crowd video (default: crowd-1080p.mp4 of $VIGIL_SHARED_DATA/video)")
  .option("--width <n>", "frame width the clip is decoded to", Number, 1920)
  .option("--fps <n>", "frames sampled per second of the clip", Number, 4)
  .option("--json", "one JSON object on stdout")
  .action(
    action(async (opts: { video?: string; width: number; fps: number; json?: boolean }) => {
      const base = configFrom(globals());
      // One inference thread: a detect worker's share, and CPU time that does not depend on the core count.
      const config = { ...base, models: { ...base.models, intraOpThreads: 1 } };
      const shared = process.env.VIGIL_SHARED_DATA;
      const video = opts.video ?? (shared ? `${shared}/video/crowd-1080p.mp4` : undefined);
      if (!video) throw new UsageError("--video is needed (or VIGIL_SHARED_DATA with video/crowd-1080p.mp4)");
      const r = await benchSmallFaces(config, await visionFor(config), {
        video,
        width: opts.width,
        fps: opts.fps,
      });
      if (opts.json) {
        console.log(JSON.stringify(r));
        return;
      }
      console.log(`${r.frames} frames of ${r.video} at ${r.width}×${r.height}`);
      console.log(
        "| detection | faces/frame | live looks/frame | photo-grade/frame | CPU ms/frame (1 thread) |",
      );
      console.log("| --- | --- | --- | --- | --- |");
      for (const row of r.rows)
        console.log(
          `| ${row.detection} | ${row.facesPerFrame.toFixed(1)} | ${row.liveLooksPerFrame.toFixed(1)} | ${row.photoGradePerFrame.toFixed(1)} | ${row.cpuMsPerFrame.toFixed(0)} |`,
        );
    }),
  );

sceneCliOptions(
  bench
    .command("e2e")
    .description(
      "N RTSP cameras looping a face video through every stage: backlog, faces/s, capture → alert latency",
    ),
)
  .option("--seconds <n>", "measured seconds (after a 6 s warm-up)", Number, 30)
  .option(
    "--synchronized",
    "start every camera at once: each loop of the clip shows new faces on all together",
  )
  .option(
    "--max-cameras",
    "ramp the camera count instead: the most that pass, against what the model costs alone allow",
  )
  .option("--max-cameras-limit <n>", "with --max-cameras: largest camera count tried", Number, 32)
  .option("--max-cameras-step <n>", "with --max-cameras: cameras added per step", Number, 2)
  .option(
    "--step-seconds <n>",
    "with --max-cameras: measured seconds per step (after a 6 s warm-up)",
    Number,
    20,
  )
  .option("--json", "one JSON object on stdout")
  .action(
    action(
      async (opts: {
        cameras: number;
        seconds: number;
        cameraFps: number;
        synchronized?: boolean;
        video?: string;
        maxCameras?: boolean;
        maxCamerasLimit: number;
        maxCamerasStep: number;
        stepSeconds: number;
        json?: boolean;
      }) => {
        const config = configFrom(globals());
        if (opts.maxCameras) {
          const r = await benchE2eMaxCameras(config, await visionFor(config), {
            video: opts.video,
            cameraFps: opts.cameraFps,
            synchronized: opts.synchronized,
            limit: opts.maxCamerasLimit,
            step: opts.maxCamerasStep,
            stepSeconds: opts.stepSeconds,
            onStep: (s) => sayAboveProgress(rampStepLine(s)),
          });
          if (opts.json) console.log(JSON.stringify(r));
          else printMaxCameras(r);
          return;
        }
        const r = await benchE2e(config, await visionFor(config), opts.cameras, opts.seconds, {
          video: opts.video,
          cameraFps: opts.cameraFps,
          synchronized: opts.synchronized,
        });
        if (opts.json) {
          console.log(JSON.stringify(r));
          return;
        }
        console.log(
          `${r.cameras} RTSP cameras (${r.video}, 1280×720 at ${r.cameraFps} fps) sampled at ${r.fps} fps for ${r.seconds.toFixed(1)} s; flip ${r.flip ? "on" : "off"}; ${r.synchronized ? "synchronized" : "staggered"} starts`,
        );
        console.log(
          `frames processed ${r.framesProcessed} of ${r.framesOffered} offered: ratio ${r.processedRatio.toFixed(3)} (${r.framesDropped} dropped at ingest)`,
        );
        console.log(
          `faces/s ${r.facesPerSecond.toFixed(1)} (${r.embeddedPerSecond.toFixed(1)}/s embedded); p95 capture → embedded face ${r.p95FaceMs.toFixed(0)} ms`,
        );
        console.log(
          `alerts ${r.alerts}: capture → alert p50 ${r.p50AlertMs.toFixed(0)} ms, p95 ${r.p95AlertMs.toFixed(0)} ms`,
        );
      },
    ),
  );

sceneCliOptions(
  bench
    .command("soak")
    .description(
      "memory under load: N RTSP cameras through every stage for minutes, RSS, heap, handles and decoders each minute",
    ),
)
  .option(
    "--minutes <n>",
    "minutes of traffic (growth is measured after the first 5, or half when under 10)",
    Number,
    30,
  )
  .option("--json", "one JSON object on stdout")
  .action(
    action(
      async (opts: {
        minutes: number;
        cameras: number;
        cameraFps: number;
        video?: string;
        json?: boolean;
      }) => {
        const config = configFrom(globals());
        const r = await benchSoak(config, await visionFor(config), {
          ...opts,
          onSample: (s, of) => sayAboveProgress(soakSampleLine(s, of)),
        });
        if (opts.json) console.log(JSON.stringify(r));
        else printSoak(r);
      },
    ),
  );

await program.parseAsync(process.argv);
