package floe.bench;

/** One event of the benchmark input (a Flink POJO): the same fields as floe's BenchEvent. */
public class Event {
    public String key;
    public long seq;
    public int value;

    public Event() {}

    public Event(String key, long seq, int value) {
        this.key = key;
        this.seq = seq;
        this.value = value;
    }
}
