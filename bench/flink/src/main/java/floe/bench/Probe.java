package floe.bench;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * What the harness observes inside the job. The MiniCluster runs in this JVM, so operators
 * write here and the driver thread reads: a benchmark device, as floe's module-level probe.
 */
public final class Probe {
    private Probe() {}

    /** Records seen by the measured operator (flushed every {@link #FLUSH} records per subtask). */
    public static final LongAdder records = new LongAdder();
    /** Records that passed the filter (workload 1). */
    public static final LongAdder passed = new LongAdder();
    /** Pairs the interval join emitted (flushed every {@link #FLUSH} per subtask, and at its end). */
    public static final LongAdder matches = new LongAdder();
    /**
     * Operators' own records-in counters (Flink's numRecordsIn of their metric group), registered
     * by a function of the measured operator in open(): counted by the task for each record it
     * hands the operator, where no user function runs once per record (the interval join).
     */
    public static final java.util.concurrent.ConcurrentLinkedQueue<org.apache.flink.metrics.Counter> inputCounters = new java.util.concurrent.ConcurrentLinkedQueue<>();
    /** Epoch ms of the first record, and of the end of the last subtask's input. */
    public static final AtomicLong firstRecordMs = new AtomicLong();
    public static final AtomicLong lastRecordMs = new AtomicLong();

    /** Recovery: the failure is armed until it fires once. */
    public static final AtomicBoolean failArmed = new AtomicBoolean();
    public static final AtomicLong failedAtMs = new AtomicLong();
    public static final AtomicLong firstAfterMs = new AtomicLong();
    public static final AtomicLong replayedAtMs = new AtomicLong();

    /** The event-time workloads: one row per window, {end, results, total, first fired ms, received ms, final 0/1}. */
    public static final java.util.concurrent.ConcurrentLinkedQueue<long[]> windows = new java.util.concurrent.ConcurrentLinkedQueue<>();

    /** Workload 3's gated source emits records below this index. */
    public static volatile long gate;

    public static final int FLUSH = 4096;

    public static void reset() {
        records.reset();
        passed.reset();
        matches.reset();
        inputCounters.clear();
        firstRecordMs.set(0);
        lastRecordMs.set(0);
        failArmed.set(false);
        failedAtMs.set(0);
        firstAfterMs.set(0);
        replayedAtMs.set(0);
        gate = 0;
        windows.clear();
    }

    /** Records seen by the measured operator: its own count, plus the registered operators' records in. */
    public static long count() {
        long n = records.sum();
        for (org.apache.flink.metrics.Counter c : inputCounters) n += c.getCount();
        return n;
    }

    /** Notes the first record's time. */
    public static void first() {
        if (firstRecordMs.get() == 0) firstRecordMs.compareAndSet(0, System.currentTimeMillis());
    }

    /** Notes the end of a subtask's input (the latest one wins). */
    public static void last() {
        lastRecordMs.accumulateAndGet(System.currentTimeMillis(), Math::max);
    }
}
