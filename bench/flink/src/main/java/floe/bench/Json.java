package floe.bench;

import java.util.List;
import java.util.Map;

/** A JSON line builder: enough for flat results with number arrays and small object arrays. */
public final class Json {
    private final StringBuilder sb = new StringBuilder("{");

    public Json put(String name, Object value) {
        if (sb.length() > 1) sb.append(',');
        sb.append(quote(name)).append(':');
        write(sb, value);
        return this;
    }

    @Override
    public String toString() {
        return sb + "}";
    }

    private static void write(StringBuilder sb, Object v) {
        if (v == null) sb.append("null");
        else if (v instanceof String s) sb.append(quote(s));
        else if (v instanceof Double d) sb.append(Double.isFinite(d) ? String.valueOf(Math.round(d * 1000) / 1000.0) : "null");
        else if (v instanceof Number || v instanceof Boolean) sb.append(v);
        else if (v instanceof Json j) sb.append(j);
        else if (v instanceof long[] a) {
            sb.append('[');
            for (int i = 0; i < a.length; i++) sb.append(i == 0 ? "" : ",").append(a[i]);
            sb.append(']');
        } else if (v instanceof List<?> l) {
            sb.append('[');
            for (int i = 0; i < l.size(); i++) {
                if (i > 0) sb.append(',');
                write(sb, l.get(i));
            }
            sb.append(']');
        } else if (v instanceof Map<?, ?> m) {
            Json j = new Json();
            m.forEach((k, x) -> j.put(String.valueOf(k), x));
            sb.append(j);
        } else sb.append(quote(String.valueOf(v)));
    }

    private static String quote(String s) {
        StringBuilder q = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> q.append("\\\"");
                case '\\' -> q.append("\\\\");
                case '\n' -> q.append("\\n");
                default -> {
                    if (c < 0x20) q.append(String.format("\\u%04x", (int) c));
                    else q.append(c);
                }
            }
        }
        return q.append('"').toString();
    }
}
