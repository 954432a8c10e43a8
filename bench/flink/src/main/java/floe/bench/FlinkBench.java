package floe.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichFilterFunction;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateBackendOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.configuration.WebOptions;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.core.execution.CheckpointType;
import org.apache.flink.runtime.checkpoint.AbstractCheckpointStats;
import org.apache.flink.runtime.checkpoint.CheckpointStatsStatus;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.co.ProcessJoinFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.functions.source.legacy.RichParallelSourceFunction;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.SlidingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.assigners.WindowAssigner;
import org.apache.flink.streaming.api.windowing.triggers.Trigger;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/**
 * The Flink peer of floe's benchmarks: workloads 1-4 on a local MiniCluster (one task
 * manager, one slot per parallel subtask), with the input of {@link Gen}. One variant per
 * invocation; one JSON line on stdout with the field names floe's harness uses.
 *
 * <pre>
 *   FlinkBench fingerprint seed=42 keys=10000 count=100000
 *   FlinkBench map-filter events=20000000 keys=10000
 *   FlinkBench keyed-count events=4000000 keys=10000 checkpoint_ms=1000 backend=hashmap
 *   FlinkBench keyed-count events=2147483646 min_seconds=10 max_seconds=120 parallelism=1 ...
 *   FlinkBench checkpoint-size keys=100000 payload_bytes=100 changed_fraction=0.01 backend=rocksdb incremental=true
 *   FlinkBench recovery events=4000000 keys=10000 checkpoint_ms=1000 fail_at=1000000 backend=hashmap
 *   FlinkBench time-fingerprint seed=42 keys=10000 count=100000 event_rate=10000
 *   FlinkBench keyed-timers|window-tumbling|window-sliding events=2000000 keys=10000 checkpoint_ms=1000 event_rate=10000
 *   FlinkBench interval-join events=2000000 keys=10000 checkpoint_ms=1000 event_rate=10000
 * </pre>
 *
 * <p>With {@code min_seconds} above 0, workloads 1 and 2 run by duration: {@code events} is
 * only the input's bound. Once a second the driver prints {@code [progress] <ms since the first
 * record> <records> <checkpoints completed since it>} on stderr; the harness decides when the
 * run is long enough and steady (bench/report/steady.ts, the same rule as for floe) and writes
 * {@code stop} on stdin. The job is then cancelled, at the earliest {@code min_seconds} after
 * the first record, and at the latest after {@code max_seconds}.
 */
public final class FlinkBench {
    private final Map<String, String> args = new HashMap<>();

    private FlinkBench(String[] argv) {
        for (int i = 1; i < argv.length; i++) {
            int eq = argv[i].indexOf('=');
            if (eq < 0) throw new IllegalArgumentException("arguments are name=value, got " + argv[i]);
            args.put(argv[i].substring(0, eq), argv[i].substring(eq + 1));
        }
    }

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0) {
            System.err.println("usage: FlinkBench fingerprint|time-fingerprint|map-filter|keyed-count|checkpoint-size|recovery|keyed-timers|window-tumbling|window-sliding|interval-join name=value...");
            System.exit(2);
        }
        FlinkBench b = new FlinkBench(argv);
        Json result =
                switch (argv[0]) {
                    case "fingerprint" -> new Json()
                            .put("fingerprint", Gen.fingerprint(b.i("seed", 42), b.i("keys", 10_000), b.i("count", 100_000)));
                    case "map-filter" -> b.mapFilter();
                    case "keyed-count" -> b.keyedCount();
                    case "checkpoint-size" -> b.checkpointSize();
                    case "recovery" -> b.recovery();
                    case "time-fingerprint" -> new Json()
                            .put("fingerprint", Gen.timeFingerprint(b.i("seed", 42), b.i("keys", 10_000), b.i("count", 100_000), b.l("event_rate", 10_000)));
                    case "keyed-timers", "window-tumbling", "window-sliding" -> b.timed(argv[0]);
                    case "interval-join" -> b.intervalJoin();
                    default -> throw new IllegalArgumentException("unknown workload " + argv[0]);
                };
        System.out.println(result);
        System.out.flush();
        // MiniCluster threads may linger; the answer is out.
        System.exit(0);
    }

    private long l(String name, long dflt) {
        return args.containsKey(name) ? Long.parseLong(args.get(name)) : dflt;
    }

    private int i(String name, int dflt) {
        return (int) l(name, dflt);
    }

    private String s(String name, String dflt) {
        return args.getOrDefault(name, dflt);
    }

    private int parallelism() {
        return i("parallelism", 2);
    }

    /** Set when the harness writes "stop" on stdin. */
    private static volatile boolean stopRequested;

    private static void listenForStop() {
        Thread t = new Thread(() -> {
            try (var in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, java.nio.charset.StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null; ) if (line.trim().equals("stop")) stopRequested = true;
            } catch (java.io.IOException ignored) {
                // no harness on stdin: the run ends at max_seconds
            }
        }, "floe-bench-stdin");
        t.setDaemon(true);
        t.start();
    }

    /** When a run stops: at the end of its input, or by duration (see the class comment). */
    private Until until() {
        Until until = new Until(l("min_seconds", 0) * 1000, l("max_seconds", 600) * 1000);
        if (until.byDuration()) listenForStop();
        return until;
    }

    // ---- workload 1: stateless map and filter ----------------------------------------

    private Json mapFilter() throws Exception {
        long events = l("events", 20_000_000);
        int keys = i("keys", 10_000);
        int seed = i("seed", 42);
        int p = parallelism();
        try (Cluster c = new Cluster(config("hashmap", 0, false), p)) {
            StreamExecutionEnvironment env = c.env();
            env.fromSource(generator(events, keys, seed, p), WatermarkStrategy.noWatermarks(), "gen")
                    .map(Gen::map)
                    .filter(new CountingFilter())
                    .sinkTo(new DiscardingSink<>());
            Until until = until();
            Run r = c.run(env, events, until);
            return r.base("map_filter", until.byDuration() ? "run_by=duration" : "events=" + events, events, keys, seed, p)
                    .put("passed", Probe.passed.sum())
                    .put("series_events_per_s", r.perSecond());
        }
    }

    /** Workload 1's filter, counting what it sees (the measured operator). */
    public static final class CountingFilter extends RichFilterFunction<Event> {
        private long n;
        private long kept;

        @Override
        public boolean filter(Event e) {
            if (n++ == 0) Probe.first();
            if (n % Probe.FLUSH == 0) Probe.records.add(Probe.FLUSH);
            boolean keep = Gen.keep(e);
            if (keep && ++kept % Probe.FLUSH == 0) Probe.passed.add(Probe.FLUSH);
            return keep;
        }

        @Override
        public void close() {
            Probe.records.add(n % Probe.FLUSH);
            Probe.passed.add(kept % Probe.FLUSH);
            Probe.last();
        }
    }

    // ---- workload 2: keyed count -----------------------------------------------------

    private Json keyedCount() throws Exception {
        long events = l("events", 4_000_000);
        int keys = i("keys", 10_000);
        int seed = i("seed", 42);
        long intervalMs = l("checkpoint_ms", 1000);
        String backend = s("backend", "hashmap");
        int p = parallelism();
        try (Cluster c = new Cluster(config(backend, intervalMs, false), p)) {
            StreamExecutionEnvironment env = c.env();
            env.fromSource(generator(events, keys, seed, p), WatermarkStrategy.noWatermarks(), "gen")
                    .keyBy(e -> e.key)
                    .process(new Count())
                    .sinkTo(new DiscardingSink<>());
            Run r = c.run(env, events, until());
            return checkpointFields(r.base("keyed_count", "keys=" + keys + ",checkpoint_ms=" + intervalMs, events, keys, seed, p), r, backend, intervalMs)
                    .put("series_events_per_s", r.perSecond());
        }
    }

    /** The checkpoint fields of a run (floe's names), over the checkpoints triggered between its first record and its end. */
    private static Json checkpointFields(Json j, Run r, String backend, long intervalMs) {
        List<Long> durations = new ArrayList<>();
        List<Json> series = new ArrayList<>();
        long bytesMax = 0;
        int failed = 0;
        for (AbstractCheckpointStats cp : r.checkpoints) {
            if (cp.getStatus() == CheckpointStatsStatus.FAILED) failed++;
            if (cp.getStatus() != CheckpointStatsStatus.COMPLETED) continue;
            // Checkpoints after the input ended (Flink waits for one before finishing) or the run stopped are not part of it.
            if (cp.getTriggerTimestamp() > r.endMs || cp.getTriggerTimestamp() < Probe.firstRecordMs.get()) continue;
            durations.add(cp.getEndToEndDuration());
            bytesMax = Math.max(bytesMax, cp.getCheckpointedSize());
            series.add(new Json()
                    .put("t_s", (cp.getTriggerTimestamp() - Probe.firstRecordMs.get()) / 1000.0)
                    .put("duration_ms", cp.getEndToEndDuration())
                    .put("size_bytes", cp.getCheckpointedSize()));
        }
        return j.put("state_backend", backend)
                .put("checkpoint_interval_ms", intervalMs)
                .put("checkpoints_completed", durations.size())
                .put("checkpoints_failed", failed)
                .put("checkpoint_ms_p50", quantile(durations, 0.5))
                .put("checkpoint_ms_max", durations.stream().mapToLong(x -> x).max().orElse(0))
                .put("checkpoint_bytes_max", bytesMax)
                .put("series_checkpoints", series);
    }

    /** Keyed count in a ValueState, without output (as floe's countPerKey). */
    public static final class Count extends KeyedProcessFunction<String, Event, Long> {
        private transient ValueState<Long> count;
        private long n;

        @Override
        public void open(OpenContext ctx) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Long.class));
        }

        @Override
        public void processElement(Event e, Context ctx, Collector<Long> out) throws Exception {
            if (n++ == 0) Probe.first();
            if (n % Probe.FLUSH == 0) Probe.records.add(Probe.FLUSH);
            Long c = count.value();
            count.update(c == null ? 1L : c + 1);
        }

        @Override
        public void close() {
            Probe.records.add(n % Probe.FLUSH);
            Probe.last();
        }
    }

    // ---- workload 3: checkpoint duration and size of large state ---------------------

    private Json checkpointSize() throws Exception {
        int keys = i("keys", 100_000);
        int payloadBytes = i("payload_bytes", 100);
        double changedFraction = Double.parseDouble(s("changed_fraction", "0.01"));
        String backend = s("backend", "hashmap");
        boolean incremental = Boolean.parseBoolean(s("incremental", "false"));
        int changed = (int) Math.round(keys * changedFraction);
        int p = parallelism();
        try (Cluster c = new Cluster(config(backend, 3_600_000, incremental), p)) {
            StreamExecutionEnvironment env = c.env();
            env.addSource(new GatedSource(keys, changed, payloadBytes), "in")
                    .setParallelism(1)
                    .keyBy(r -> r.f0)
                    .process(new KeepLatest())
                    .sinkTo(new DiscardingSink<>());
            JobID job = c.submit(env);
            Probe.gate = keys;
            c.awaitRecords(keys, 600_000);
            log("filled " + keys + " keys; first checkpoint");
            AbstractCheckpointStats first = c.checkpointNow(job);
            Probe.gate = keys + changed;
            c.awaitRecords(keys + changed, 600_000);
            AbstractCheckpointStats second = c.checkpointNow(job);
            log("second checkpoint " + second.getEndToEndDuration() + " ms; failing a subtask");
            // Failure: the next record fails the keyed operator; the job restores checkpoint 2.
            Probe.failArmed.set(true);
            Probe.gate = keys + changed + 64;
            long waitMs = l("recovery_wait_ms", 120_000);
            long deadline = System.currentTimeMillis() + waitMs;
            while (Probe.firstAfterMs.get() == 0 && System.currentTimeMillis() < deadline) Thread.sleep(2);
            boolean recovered = Probe.firstAfterMs.get() != 0;
            if (!recovered) log("no record processed " + waitMs + " ms after the failure; giving up");
            c.cancel(job);
            return new Json()
                    .put("bench", "checkpoint_size")
                    .put("engine", "flink")
                    .put("variant", "keys=" + keys + ",incremental=" + incremental + ",backend=" + backend)
                    .put("input", "gated SourceFunction")
                    .put("state_backend", backend)
                    .put("parallelism", p)
                    .put("keys", keys)
                    .put("payload_bytes", payloadBytes)
                    .put("incremental", incremental)
                    .put("changed_fraction", changedFraction)
                    .put("full_checkpoint_ms", first.getEndToEndDuration())
                    .put("full_checkpoint_bytes", first.getCheckpointedSize())
                    .put("second_checkpoint_ms", second.getEndToEndDuration())
                    .put("second_checkpoint_bytes", second.getCheckpointedSize())
                    .put("state_size_bytes", second.getStateSize())
                    .put("recovery_to_first_record_ms", recovered ? Probe.firstAfterMs.get() - Probe.failedAtMs.get() : null)
                    .put("recovery_gave_up_after_ms", recovered ? null : waitMs);
        }
    }

    /**
     * Emits record i while i is below {@link Probe#gate}: keys "key-0".."key-(K-1)" with
     * payload(1, i), then the changed keys ("key-" + (j*97 mod K), payload(2, j)), then "key-j"
     * with payload "z", the same records floe's workload ingests over HTTP.
     */
    public static final class GatedSource extends RichParallelSourceFunction<Tuple2<String, String>> implements CheckpointedFunction {
        private final int keys;
        private final int changed;
        private final int payloadBytes;
        private long next;
        private volatile boolean running = true;
        private transient ListState<Long> offset;

        GatedSource(int keys, int changed, int payloadBytes) {
            this.keys = keys;
            this.changed = changed;
            this.payloadBytes = payloadBytes;
        }

        @Override
        public void run(SourceContext<Tuple2<String, String>> ctx) throws Exception {
            while (running) {
                if (next >= Probe.gate) {
                    Thread.sleep(1);
                    continue;
                }
                synchronized (ctx.getCheckpointLock()) {
                    long i = next;
                    Tuple2<String, String> r;
                    if (i < keys) r = Tuple2.of("key-" + i, Gen.payload(1, i, payloadBytes));
                    else if (i < keys + changed) r = Tuple2.of("key-" + (((i - keys) * 97) % keys), Gen.payload(2, i - keys, payloadBytes));
                    else r = Tuple2.of("key-" + (i - keys - changed), "z");
                    ctx.collect(r);
                    next++;
                }
            }
        }

        @Override
        public void cancel() {
            running = false;
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) throws Exception {
            offset.update(List.of(next));
        }

        @Override
        public void initializeState(FunctionInitializationContext context) throws Exception {
            offset = context.getOperatorStateStore().getListState(new ListStateDescriptor<>("offset", Long.class));
            for (Long o : offset.get()) next = o;
        }
    }

    /** Keeps the latest payload per key; fails once when armed; notes the restored attempt's first record. */
    public static final class KeepLatest extends KeyedProcessFunction<String, Tuple2<String, String>, Long> {
        private transient ValueState<String> payload;

        @Override
        public void open(OpenContext ctx) {
            payload = getRuntimeContext().getState(new ValueStateDescriptor<>("payload", String.class));
        }

        @Override
        public void processElement(Tuple2<String, String> r, Context ctx, Collector<Long> out) throws Exception {
            if (getRuntimeContext().getTaskInfo().getAttemptNumber() > 0 && Probe.firstAfterMs.get() == 0) {
                Probe.firstAfterMs.compareAndSet(0, System.currentTimeMillis());
            }
            if (Probe.failArmed.compareAndSet(true, false)) {
                Probe.failedAtMs.set(System.currentTimeMillis());
                throw new RuntimeException("injected failure");
            }
            payload.update(r.f1);
            Probe.records.increment();
        }
    }

    // ---- workload 4: recovery --------------------------------------------------------

    private Json recovery() throws Exception {
        long events = l("events", 4_000_000);
        int keys = i("keys", 10_000);
        int seed = i("seed", 42);
        long intervalMs = l("checkpoint_ms", 1000);
        long failAt = l("fail_at", 1_000_000);
        String backend = s("backend", "hashmap");
        int p = parallelism();
        try (Cluster c = new Cluster(config(backend, intervalMs, false), p)) {
            StreamExecutionEnvironment env = c.env();
            env.fromSource(generator(events, keys, seed, p), WatermarkStrategy.noWatermarks(), "gen")
                    .keyBy(e -> e.key)
                    .process(new CountWithFailure(failAt))
                    .sinkTo(new DiscardingSink<>());
            Probe.failArmed.set(true);
            JobID job = c.submit(env);
            long deadline = System.currentTimeMillis() + 600_000;
            while (Probe.replayedAtMs.get() == 0 && System.currentTimeMillis() < deadline) Thread.sleep(2);
            if (Probe.replayedAtMs.get() == 0) throw new IllegalStateException("the failed event was never processed again");
            var snapshot = c.mc.getExecutionGraph(job).get().getCheckpointStatsSnapshot();
            c.cancel(job);
            return new Json()
                    .put("bench", "recovery")
                    .put("engine", "flink")
                    .put("variant", "keys=" + keys + ",checkpoint_ms=" + intervalMs)
                    .put("input", "DataGeneratorSource")
                    .put("state_backend", backend)
                    .put("parallelism", p)
                    .put("events", events)
                    .put("keys", keys)
                    .put("seed", seed)
                    .put("checkpoint_interval_ms", intervalMs)
                    .put("fail_at", failAt)
                    .put("restored_checkpoint", snapshot.getLatestRestoredCheckpoint() == null ? null : snapshot.getLatestRestoredCheckpoint().getCheckpointId())
                    .put("recovery_to_first_record_ms", Probe.firstAfterMs.get() - Probe.failedAtMs.get())
                    .put("time_lost_ms", Probe.replayedAtMs.get() - Probe.failedAtMs.get());
        }
    }

    /** Keyed count that fails once on seq `failAt` and notes when that event is processed again. */
    public static final class CountWithFailure extends KeyedProcessFunction<String, Event, Long> {
        private final long failAt;
        private transient ValueState<Long> count;

        CountWithFailure(long failAt) {
            this.failAt = failAt;
        }

        @Override
        public void open(OpenContext ctx) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Long.class));
        }

        @Override
        public void processElement(Event e, Context ctx, Collector<Long> out) throws Exception {
            long now = System.currentTimeMillis();
            if (getRuntimeContext().getTaskInfo().getAttemptNumber() > 0 && Probe.firstAfterMs.get() == 0) Probe.firstAfterMs.compareAndSet(0, now);
            if (e.seq == failAt) {
                if (Probe.failArmed.compareAndSet(true, false)) {
                    Probe.failedAtMs.set(now);
                    throw new RuntimeException("injected failure at seq " + failAt);
                }
                Probe.replayedAtMs.compareAndSet(0, now);
            }
            Long c = count.value();
            count.update(c == null ? 1L : c + 1);
        }
    }

    // ---- the event-time workloads: issue 17's timers, issue 18's windows ------------

    /** Window size of the timer and tumbling workloads, and the slide of the sliding one (bench/generator.ts BENCH_WINDOW_MS). */
    static final long WINDOW_MS = 10_000;
    /** The sliding windows' size (BENCH_SLIDING_SIZE_MS). */
    static final long SLIDING_SIZE_MS = 60_000;

    /**
     * One event-time workload, as floe's bench/jobs.ts builds it: the generator with event time
     * and a bounded-out-of-orderness watermark; keyBy(key); the count per key and window (by
     * hand with timers, or a tumbling or sliding window); keyBy(window end); the tally, one row
     * per window when the watermark passes the window's last ms.
     */
    private Json timed(String workload) throws Exception {
        long events = l("events", 2_000_000);
        int keys = i("keys", 10_000);
        int seed = i("seed", 42);
        long rate = l("event_rate", 10_000);
        long intervalMs = l("checkpoint_ms", 1000);
        String backend = s("backend", "hashmap");
        int p = parallelism();
        String bench = workload.replace('-', '_');
        long sizeMs = workload.equals("window-sliding") ? SLIDING_SIZE_MS : WINDOW_MS;
        try (Cluster c = new Cluster(config(backend, intervalMs, false), p)) {
            StreamExecutionEnvironment env = c.env();
            if (events % p != 0) throw new IllegalArgumentException("events must be a multiple of the parallelism");
            GeneratorFunction<Long, TimedEvent> fn = index -> Gen.timedEvent(seed, keys, Gen.seqOfIndex(index, events, p), rate);
            WatermarkStrategy<TimedEvent> watermarks = WatermarkStrategy.<TimedEvent>forBoundedOutOfOrderness(Duration.ofMillis(Gen.OUT_OF_ORDERNESS_MS))
                    .withTimestampAssigner((e, previous) -> e.ts);
            KeyedStream<TimedEvent, String> keyed = env.fromSource(new DataGeneratorSource<>(fn, events, TypeInformation.of(TimedEvent.class)), watermarks, "gen")
                    .keyBy(e -> e.key);
            DataStream<WindowCount> counts = switch (workload) {
                case "keyed-timers" -> keyed.process(new CountPerInterval()).name("count");
                case "window-tumbling" -> keyed.window(new CountingAssigner(TumblingEventTimeWindows.of(Duration.ofMillis(WINDOW_MS))))
                        .aggregate(new CountEvents(), new StampCount()).name("window");
                default -> keyed.window(new CountingAssigner(SlidingEventTimeWindows.of(Duration.ofMillis(SLIDING_SIZE_MS), Duration.ofMillis(WINDOW_MS))))
                        .aggregate(new CountEvents(), new StampCount()).name("window");
            };
            counts.keyBy(w -> w.end).process(new Tally()).name("tally").sinkTo(new DiscardingSink<>());
            Run r = c.run(env, events, until());
            List<Json> rows = new ArrayList<>();
            for (long[] w : Probe.windows) {
                rows.add(new Json().put("end", w[0]).put("results", w[1]).put("total", w[2]).put("first_fired_ms", w[3]).put("received_ms", w[4]).put("final", w[5] == 1));
            }
            return checkpointFields(r.base(bench, "keys=" + keys + ",checkpoint_ms=" + intervalMs, events, keys, seed, p), r, backend, intervalMs)
                    .put("event_rate", rate)
                    .put("window_ms", sizeMs)
                    .put("slide_ms", WINDOW_MS)
                    .put("out_of_orderness_ms", Gen.OUT_OF_ORDERNESS_MS)
                    .put("first_record_epoch_ms", Probe.firstRecordMs.get())
                    .put("series_events_per_s", r.perSecond())
                    .put("window_rows", rows);
        }
    }

    /** Issue 17: a count per key and WINDOW_MS of event time, with one event-time timer per key at the interval's last ms (floe's countPerInterval). */
    public static final class CountPerInterval extends KeyedProcessFunction<String, TimedEvent, WindowCount> {
        private transient MapState<Long, Long> perInterval;

        @Override
        public void open(OpenContext ctx) {
            perInterval = getRuntimeContext().getMapState(new MapStateDescriptor<>("per-interval", Long.class, Long.class));
        }

        @Override
        public void processElement(TimedEvent e, Context ctx, Collector<WindowCount> out) throws Exception {
            Probe.first();
            Probe.records.increment();
            long end = Math.floorDiv(e.ts, WINDOW_MS) * WINDOW_MS + WINDOW_MS;
            Long n = perInterval.get(end);
            perInterval.put(end, n == null ? 1L : n + 1);
            ctx.timerService().registerEventTimeTimer(end - 1);
        }

        @Override
        public void onTimer(long ts, OnTimerContext ctx, Collector<WindowCount> out) throws Exception {
            Long n = perInterval.get(ts + 1);
            out.collect(new WindowCount(ts + 1, n == null ? 0 : n, System.currentTimeMillis()));
            perInterval.remove(ts + 1);
        }
    }

    /**
     * Flink's assigner, counting the window operator's records for the probe (the measured
     * operator, as floe's "window" vertex): the operator asks it once per record, while the
     * aggregate's add runs once per record and window (6 times in a sliding window of 60 s every 10 s).
     */
    public static final class CountingAssigner extends WindowAssigner<Object, TimeWindow> {
        private final WindowAssigner<Object, TimeWindow> inner;

        CountingAssigner(WindowAssigner<Object, TimeWindow> inner) {
            this.inner = inner;
        }

        @Override
        public java.util.Collection<TimeWindow> assignWindows(Object element, long timestamp, WindowAssignerContext context) {
            Probe.first();
            Probe.records.increment();
            return inner.assignWindows(element, timestamp, context);
        }

        @Override
        public Trigger<Object, TimeWindow> getDefaultTrigger() {
            return inner.getDefaultTrigger();
        }

        @Override
        public org.apache.flink.api.common.typeutils.TypeSerializer<TimeWindow> getWindowSerializer(org.apache.flink.api.common.ExecutionConfig config) {
            return inner.getWindowSerializer(config);
        }

        @Override
        public boolean isEventTime() {
            return inner.isEventTime();
        }
    }

    /** The windows' count. */
    public static final class CountEvents implements AggregateFunction<TimedEvent, Long, Long> {
        @Override
        public Long createAccumulator() {
            return 0L;
        }

        @Override
        public Long add(TimedEvent e, Long n) {
            return n + 1;
        }

        @Override
        public Long getResult(Long n) {
            return n;
        }

        @Override
        public Long merge(Long a, Long b) {
            return a + b;
        }
    }

    /** Stamps a window's count with its end and the wall time it fired (floe's stampCount). */
    public static final class StampCount extends ProcessWindowFunction<Long, WindowCount, String, TimeWindow> {
        @Override
        public void process(String key, Context ctx, Iterable<Long> counts, Collector<WindowCount> out) {
            out.collect(new WindowCount(ctx.window().getEnd(), counts.iterator().next(), System.currentTimeMillis()));
        }
    }

    /** Sums a window's results, keyed by its end; notes one row when the watermark passes its last ms (floe's tallyWindows). */
    public static final class Tally extends KeyedProcessFunction<Long, WindowCount, Long> {
        private transient ValueState<long[]> tally;

        @Override
        public void open(OpenContext ctx) {
            tally = getRuntimeContext().getState(new ValueStateDescriptor<>("tally", long[].class));
        }

        @Override
        public void processElement(WindowCount r, Context ctx, Collector<Long> out) throws Exception {
            long[] t = tally.value();
            tally.update(t == null ? new long[] {1, r.n, r.firedMs} : new long[] {t[0] + 1, t[1] + r.n, Math.min(t[2], r.firedMs)});
            // The results carry the window's last ms as event time: the tally's watermark passes it only once every window subtask fired it.
            ctx.timerService().registerEventTimeTimer(r.end - 1);
        }

        @Override
        public void onTimer(long ts, OnTimerContext ctx, Collector<Long> out) throws Exception {
            long[] t = tally.value();
            if (t == null) return;
            boolean fin = ctx.timerService().currentWatermark() == Long.MAX_VALUE;
            Probe.windows.add(new long[] {ts + 1, t[0], t[1], t[2], System.currentTimeMillis(), fin ? 1 : 0});
            out.collect(ts + 1);
            tally.clear();
        }
    }

    // ---- issue 19: the interval join ------------------------------------------------

    /** The join's bounds, relative to the left event's time (bench/interval-join.ts JOIN_LOWER_MS, JOIN_UPPER_MS). */
    static final long JOIN_LOWER_MS = -500;
    static final long JOIN_UPPER_MS = 500;

    /**
     * The interval join as floe's bench/jobs.ts builds it: two timed generated streams, the right
     * one with seed + 1, each with half of {@code events} (the records into the join), keyed by key,
     * {@code intervalJoin(...).between(-500 ms, +500 ms).process(...)}, the pairs to a discarding
     * sink. The measured count is the join operator's own numRecordsIn (see {@link PairSeqs}).
     */
    private Json intervalJoin() throws Exception {
        long events = l("events", 2_000_000);
        int keys = i("keys", 10_000);
        int seed = i("seed", 42);
        long rate = l("event_rate", 10_000);
        long intervalMs = l("checkpoint_ms", 1000);
        String backend = s("backend", "hashmap");
        int p = parallelism();
        long perSide = events / 2 / p * p;
        long total = 2 * perSide;
        try (Cluster c = new Cluster(config(backend, intervalMs, false), p)) {
            StreamExecutionEnvironment env = c.env();
            WatermarkStrategy<TimedEvent> watermarks = WatermarkStrategy.<TimedEvent>forBoundedOutOfOrderness(Duration.ofMillis(Gen.OUT_OF_ORDERNESS_MS))
                    .withTimestampAssigner((e, previous) -> e.ts);
            KeyedStream<TimedEvent, String> left = env.fromSource(timedSource(seed, keys, perSide, rate, p), watermarks, "left").keyBy(e -> e.key);
            KeyedStream<TimedEvent, String> right = env.fromSource(timedSource(seed + 1, keys, perSide, rate, p), watermarks, "right").keyBy(e -> e.key);
            left.intervalJoin(right)
                    .between(Duration.ofMillis(JOIN_LOWER_MS), Duration.ofMillis(JOIN_UPPER_MS))
                    .process(new PairSeqs())
                    .name("join")
                    .sinkTo(new DiscardingSink<>());
            Run r = c.run(env, total, until());
            long matches = Probe.matches.sum();
            return checkpointFields(r.base("interval_join", "keys=" + keys + ",checkpoint_ms=" + intervalMs, total, keys, seed, p), r, backend, intervalMs)
                    .put("events_per_side", perSide)
                    .put("event_rate", rate)
                    .put("lower_ms", JOIN_LOWER_MS)
                    .put("upper_ms", JOIN_UPPER_MS)
                    .put("out_of_orderness_ms", Gen.OUT_OF_ORDERNESS_MS)
                    .put("matches", matches)
                    .put("matches_per_record", r.processed > 0 ? Math.round(matches * 1000.0 / r.processed) / 1000.0 : null)
                    .put("series_events_per_s", r.perSecond());
        }
    }

    /** The timed input of one stream: seq 0..count-1 with the given seed, split as floe's partitions. */
    private static DataGeneratorSource<TimedEvent> timedSource(int seed, int keys, long count, long rate, int p) {
        if (count % p != 0) throw new IllegalArgumentException("events per side must be a multiple of the parallelism");
        GeneratorFunction<Long, TimedEvent> fn = index -> Gen.timedEvent(seed, keys, Gen.seqOfIndex(index, count, p), rate);
        return new DataGeneratorSource<>(fn, count, TypeInformation.of(TimedEvent.class));
    }

    /**
     * Emits each pair's two seqs (floe's pairSeqs) and counts the pairs. Its open() registers the
     * join operator's numRecordsIn counter with the probe: the operator calls no user code per
     * record, only per pair, and the task counts each record it hands the operator there.
     */
    public static final class PairSeqs extends ProcessJoinFunction<TimedEvent, TimedEvent, Tuple2<Long, Long>> {
        private long n;

        @Override
        public void open(OpenContext ctx) {
            Probe.inputCounters.add(getRuntimeContext().getMetricGroup().getIOMetricGroup().getNumRecordsInCounter());
        }

        @Override
        public void processElement(TimedEvent l, TimedEvent r, Context ctx, Collector<Tuple2<Long, Long>> out) {
            if (++n % Probe.FLUSH == 0) Probe.matches.add(Probe.FLUSH);
            out.collect(Tuple2.of(l.seq, r.seq));
        }

        @Override
        public void close() {
            Probe.matches.add(n % Probe.FLUSH);
        }
    }

    // ---- the cluster -----------------------------------------------------------------

    /** DataGeneratorSource over seq 0..events-1, split i emitting seq = j * p + i (floe's partitioning). */
    private static DataGeneratorSource<Event> generator(long events, int keys, int seed, int p) {
        if (events % p != 0) throw new IllegalArgumentException("events must be a multiple of the parallelism");
        GeneratorFunction<Long, Event> fn = index -> Gen.event(seed, keys, Gen.seqOfIndex(index, events, p));
        return new DataGeneratorSource<>(fn, events, TypeInformation.of(Event.class));
    }

    private Configuration config(String backend, long intervalMs, boolean incremental) throws Exception {
        Configuration conf = new Configuration();
        Path dir = Files.createTempDirectory("flink-bench-");
        conf.set(StateBackendOptions.STATE_BACKEND, backend);
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, dir.toUri().toString());
        conf.set(CheckpointingOptions.INCREMENTAL_CHECKPOINTS, incremental);
        if (intervalMs > 0) conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(intervalMs));
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 10);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ZERO);
        conf.set(WebOptions.CHECKPOINTS_HISTORY_SIZE, 10_000);
        conf.set(TaskManagerOptions.MANAGED_MEMORY_SIZE, MemorySize.parse(s("managed_memory", "256m")));
        conf.set(TaskManagerOptions.NUM_TASK_SLOTS, parallelism());
        return conf;
    }

    private static void log(String message) {
        System.err.println("[flink] " + message);
    }

    private static long quantile(List<Long> xs, double q) {
        if (xs.isEmpty()) return 0;
        List<Long> s = new ArrayList<>(xs);
        s.sort(Long::compare);
        return s.get((int) Math.min(s.size() - 1, Math.max(0, Math.ceil(q * s.size()) - 1)));
    }

    /** One MiniCluster for one run. */
    private static final class Cluster implements AutoCloseable {
        final MiniCluster mc;
        final Configuration conf;
        final int parallelism;

        Cluster(Configuration conf, int parallelism) throws Exception {
            Probe.reset();
            this.conf = conf;
            this.parallelism = parallelism;
            mc = new MiniCluster(new MiniClusterConfiguration.Builder()
                    .setConfiguration(conf)
                    .setNumTaskManagers(1)
                    .setNumSlotsPerTaskManager(parallelism)
                    .withRandomPorts()
                    .build());
            mc.start();
        }

        StreamExecutionEnvironment env() {
            StreamExecutionEnvironment env = new StreamExecutionEnvironment(conf);
            env.setParallelism(parallelism);
            return env;
        }

        JobID submit(StreamExecutionEnvironment env) throws Exception {
            var graph = env.getStreamGraph();
            graph.setJobId(new JobID());
            return mc.submitJob(graph).get().getJobID();
        }

        /**
         * Runs a job until its input ends or, by duration, until {@code until} says (then cancels
         * it), sampling the probe's count every 100 ms.
         */
        Run run(StreamExecutionEnvironment env, long events, Until until) throws Exception {
            JobID job = submit(env);
            long submittedMs = System.currentTimeMillis();
            List<long[]> samples = new ArrayList<>();
            var result = mc.requestJobResult(job);
            long endMs = 0;
            long nextProgressMs = 0;
            while (!result.isDone()) {
                long now = System.currentTimeMillis();
                long count = Probe.count();
                // An operator counted only by its metric group notes no first record: the first sample that saw one.
                if (count > 0) Probe.first();
                samples.add(new long[] {now, count});
                long first = Probe.firstRecordMs.get();
                if (until.byDuration() && first > 0) {
                    if (now - first >= until.maxMs() || (stopRequested && now - first >= until.minMs())) {
                        endMs = now;
                        break;
                    }
                    // Progress for the harness once a second; the checkpoint statistics are not looked at more often.
                    if (now >= nextProgressMs) {
                        nextProgressMs = now + 1000;
                        long completed = checkpoints(job).stream()
                                .filter(cp -> cp.getStatus() == CheckpointStatsStatus.COMPLETED && cp.getTriggerTimestamp() >= first)
                                .count();
                        System.err.println("[progress] " + (now - first) + " " + count + " " + completed);
                    }
                }
                try {
                    result.get(100, TimeUnit.MILLISECONDS);
                } catch (java.util.concurrent.TimeoutException ignored) {
                    // next sample
                }
            }
            if (endMs > 0) {
                long processed = Probe.count();
                List<AbstractCheckpointStats> cps = checkpoints(job);
                cancel(job);
                return new Run(job, submittedMs, samples, endMs, processed, cps);
            }
            samples.add(new long[] {System.currentTimeMillis(), Probe.count()});
            var r = result.get();
            if (!r.isSuccess()) throw new IllegalStateException("job failed: " + r.getSerializedThrowable().map(Throwable::toString).orElse("?"));
            if (Probe.count() < events) throw new IllegalStateException("only " + Probe.count() + " of " + events + " events processed");
            // Operators that note no end of input (the window's aggregate): the first sample that saw every event, as floe's harness does.
            long lastMs = Probe.lastRecordMs.get();
            if (lastMs == 0) lastMs = samples.stream().filter(x -> x[1] >= events).mapToLong(x -> x[0]).findFirst().orElse(System.currentTimeMillis());
            return new Run(job, submittedMs, samples, lastMs, events, checkpoints(job));
        }

        void awaitRecords(long n, long timeoutMs) throws InterruptedException {
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (Probe.records.sum() < n) {
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException("timed out waiting for " + n + " records");
                Thread.sleep(5);
            }
        }

        /** Triggers a checkpoint (of the configured kind) and returns its statistics once complete. */
        AbstractCheckpointStats checkpointNow(JobID job) throws Exception {
            long id = mc.triggerCheckpoint(job, CheckpointType.CONFIGURED).get(10, TimeUnit.MINUTES);
            for (;;) {
                AbstractCheckpointStats s = mc.getExecutionGraph(job).get().getCheckpointStatsSnapshot().getHistory().getCheckpointById(id);
                if (s != null && s.getStatus() == CheckpointStatsStatus.COMPLETED) return s;
                if (s != null && s.getStatus() == CheckpointStatsStatus.FAILED) throw new IllegalStateException("checkpoint " + id + " failed");
                Thread.sleep(10);
            }
        }

        List<AbstractCheckpointStats> checkpoints(JobID job) throws Exception {
            List<AbstractCheckpointStats> all = new ArrayList<>(mc.getExecutionGraph(job).get().getCheckpointStatsSnapshot().getHistory().getCheckpoints());
            all.sort((a, b) -> Long.compare(a.getCheckpointId(), b.getCheckpointId()));
            return all;
        }

        void cancel(JobID job) {
            try {
                mc.cancelJob(job).get(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                log("cancel: " + e);
            }
        }

        @Override
        public void close() throws Exception {
            mc.close();
        }
    }

    /** When a run stops: {@code minMs} 0 means at the end of its input. */
    private record Until(long minMs, long maxMs) {
        boolean byDuration() {
            return minMs > 0;
        }
    }

    /**
     * A finished run: its samples of the probe's count, when it ended (the last record, or the
     * stop of a run by duration), the events processed by then, and its checkpoint statistics.
     */
    private record Run(JobID jobId, long submittedMs, List<long[]> samples, long endMs, long processed, List<AbstractCheckpointStats> checkpoints) {
        Json base(String bench, String variant, long events, int keys, int seed, int p) {
            long first = Probe.firstRecordMs.get();
            long ms = Math.max(1, endMs - first);
            return new Json()
                    .put("bench", bench)
                    .put("engine", "flink")
                    .put("variant", variant)
                    .put("input", "DataGeneratorSource")
                    .put("parallelism", p)
                    .put("events", events)
                    .put("keys", keys)
                    .put("seed", seed)
                    .put("events_per_s", Math.round(processed / (ms / 1000.0)))
                    .put("events_processed", processed)
                    .put("complete", processed >= events)
                    .put("duration_ms", ms)
                    .put("first_record_ms", first - submittedMs);
        }

        /** Events per second in each whole second since the first record (linear between samples). */
        long[] perSecond() {
            long t0 = Probe.firstRecordMs.get();
            long end = samples.get(samples.size() - 1)[0];
            if (t0 == 0) return new long[0];
            List<Long> out = new ArrayList<>();
            for (long t = t0; t + 1000 <= end; t += 1000) out.add(Math.round(at(t + 1000) - at(t)));
            return out.stream().mapToLong(x -> x).toArray();
        }

        private double at(long t) {
            for (int i = 1; i < samples.size(); i++) {
                long[] a = samples.get(i - 1);
                long[] b = samples.get(i);
                if (b[0] >= t) return a[1] + (double) (b[1] - a[1]) * (t - a[0]) / Math.max(1, b[0] - a[0]);
            }
            return samples.get(samples.size() - 1)[1];
        }
    }
}
