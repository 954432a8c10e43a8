package floe.bench;

/** A count of one key in one window, stamped with the wall time its window fired it (floe's WindowCount). */
public class WindowCount {
    /** The window's end (exclusive), event time. */
    public long end;
    public long n;
    /** System.currentTimeMillis() when the window (or the key's timer) fired it. */
    public long firedMs;

    public WindowCount() {}

    public WindowCount(long end, long n, long firedMs) {
        this.end = end;
        this.n = n;
        this.firedMs = firedMs;
    }
}
