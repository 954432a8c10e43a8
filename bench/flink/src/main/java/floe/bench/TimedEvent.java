package floe.bench;

/** One event of the timed input (a Flink POJO): floe's GenRecord with its event time `ts`. */
public class TimedEvent {
    public String key;
    public long seq;
    public int value;
    public long ts;

    public TimedEvent() {}

    public TimedEvent(String key, long seq, int value, long ts) {
        this.key = key;
        this.seq = seq;
        this.value = value;
        this.ts = ts;
    }
}
