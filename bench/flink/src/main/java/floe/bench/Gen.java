package floe.bench;

/**
 * The benchmark input, bit for bit as bench/generator.ts defines it, so that floe and
 * Flink process the same events:
 *
 * <pre>
 *   h     = mix32((seed * 0x9E3779B9) ^ seq)        32-bit int arithmetic
 *   key   = "k" + (h mod keys)                       h unsigned
 *   value = mix32(h ^ 0x5BD1E995) mod 1000
 * </pre>
 *
 * Partition (split) p of P emits the events whose seq = j * P + p for j = 0, 1, ...:
 * the same interleaving as floe's generator partitions.
 */
public final class Gen {
    private Gen() {}

    /** MurmurHash3's 32-bit finalizer, read as unsigned. */
    public static long mix32(int x) {
        x ^= x >>> 16;
        x *= 0x7feb352d;
        x ^= x >>> 15;
        x *= 0x846ca68b;
        x ^= x >>> 16;
        return Integer.toUnsignedLong(x);
    }

    public static long hash(int seed, long seq) {
        return mix32((seed * 0x9e3779b9) ^ (int) seq);
    }

    public static Event event(int seed, int keys, long seq) {
        long h = hash(seed, seq);
        return new Event("k" + (h % keys), seq, (int) (mix32((int) h ^ 0x5bd1e995) % 1000));
    }

    /** The seq of index i of DataGeneratorSource's range [0, events) split evenly over `partitions` splits. */
    public static long seqOfIndex(long index, long events, int partitions) {
        long perSplit = events / partitions;
        return (index % perSplit) * partitions + index / perSplit;
    }

    /** Event time of the timed input's first event, before its out-of-orderness: 2026-01-01T00:00:00Z. */
    public static final long EVENT_TIME_BASE_MS = 1_767_225_600_000L;
    /** The largest lateness of a record behind its partition's newest, and the watermark bound. */
    public static final long OUT_OF_ORDERNESS_MS = 1000;

    /**
     * Event time of event seq at `rate` events per second of event time, as bench/generator.ts's eventTime:
     * base + floor(seq * 1000 / rate) - (mix32(h ^ 0x27D4EB2F) mod (OUT_OF_ORDERNESS_MS + 1)).
     */
    public static long eventTime(int seed, long seq, long rate) {
        long h = hash(seed, seq);
        return EVENT_TIME_BASE_MS + (seq * 1000L) / rate - mix32((int) h ^ 0x27d4eb2f) % (OUT_OF_ORDERNESS_MS + 1);
    }

    public static TimedEvent timedEvent(int seed, int keys, long seq, long rate) {
        Event e = event(seed, keys, seq);
        return new TimedEvent(e.key, e.seq, e.value, eventTime(seed, seq, rate));
    }

    /** FNV-1a (32 bits) over "key,ts\n" of events 0..count-1, as 8 hex digits (bench/generator.ts's timeFingerprint). */
    public static String timeFingerprint(int seed, int keys, int count, long rate) {
        int h = 0x811c9dc5;
        for (int seq = 0; seq < count; seq++) {
            String line = event(seed, keys, seq).key + "," + eventTime(seed, seq, rate) + "\n";
            for (int i = 0; i < line.length(); i++) h = (h ^ line.charAt(i)) * 0x01000193;
        }
        return String.format("%08x", h);
    }

    /** Workload 1's map. */
    public static Event map(Event e) {
        return new Event(e.key, e.seq, e.value * 2 + 1);
    }

    /** Workload 1's filter. */
    public static boolean keep(Event e) {
        return e.value % 3 != 0;
    }

    private static final String ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /** Workload 3's incompressible state payload, as bench/generator.ts's payload(). */
    public static String payload(int variant, long index, int bytes) {
        StringBuilder out = new StringBuilder(bytes);
        for (int g = 0; out.length() < bytes; g++) {
            long h = mix32((variant * 0x9e3779b9) ^ ((int) index * 0x85ebca6b) ^ (g * 0xc2b2ae35));
            for (int c = 0; c < 4 && out.length() < bytes; c++) out.append(ALPHABET.charAt((int) ((h >>> (6 * c)) & 63)));
        }
        return out.toString();
    }

    /** FNV-1a (32 bits) over "key,value,payload\n" of events 0..count-1 (payload for the first 1000), as 8 hex digits. */
    public static String fingerprint(int seed, int keys, int count) {
        int h = 0x811c9dc5;
        for (int seq = 0; seq < count; seq++) {
            Event e = event(seed, keys, seq);
            String line = e.key + "," + e.value + "," + (seq < 1000 ? payload(seq & 3, seq, 100) : "") + "\n";
            for (int i = 0; i < line.length(); i++) h = (h ^ line.charAt(i)) * 0x01000193;
        }
        return String.format("%08x", h);
    }
}
