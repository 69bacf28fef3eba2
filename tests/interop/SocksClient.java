/*
 * A Java client for the SOCKS end-to-end tests (tests/socks.e2e.test.ts), run as a single-file
 * source program: `java [-D...] tests/interop/SocksClient.java <mode> ...`.
 *
 * The proxy comes from the standard system properties (-DsocksProxyHost, -DsocksProxyPort,
 * -DsocksProxyVersion), exactly as a user would configure a JVM. The JDK's DefaultProxySelector
 * skips the proxy for localhost, 127.* and [::1] unless the matching *nonProxyHosts property is set to
 * the empty string (a non-empty value gets the loopback defaults appended): the tests pass
 * -Dhttp.nonProxyHosts= (HTTP and HTTPS URLs) and -DsocksNonProxyHosts= (plain sockets).
 *
 * Modes (one JSON line on stdout, exit 0; any exception: message on stderr, exit 1):
 *   get URL              GET; prints status, body length, body sha256, X-Sha256 header
 *   post URL N           POSTs N deterministic bytes (fixed-length streaming); prints status,
 *                        the response body (the origin's sha256) and the sha256 of what was sent
 *   raw HOST PORT TEXT   plain java.net.Socket to HOST:PORT (through the SOCKS proxy), writes
 *                        TEXT, half-closes (shutdownOutput), reads to EOF; prints what came back
 */
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

public class SocksClient {
    public static void main(String[] args) throws Exception {
        try {
            switch (args[0]) {
                case "get" -> get(args[1]);
                case "post" -> post(args[1], Long.parseLong(args[2]));
                case "raw" -> raw(args[1], Integer.parseInt(args[2]), args[3]);
                default -> throw new IllegalArgumentException("unknown mode " + args[0]);
            }
        } catch (Exception e) {
            System.err.println(e.getClass().getName() + ": " + e.getMessage());
            System.exit(1);
        }
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x));
        return sb.toString();
    }

    /** A JSON string literal; everything outside printable ASCII is \\u-escaped (bodies are binary). */
    static String json(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            if (ch == '"' || ch == '\\') sb.append('\\').append(ch);
            else if (ch < 0x20 || ch > 0x7e) sb.append(String.format("\\u%04x", (int) ch));
            else sb.append(ch);
        }
        return sb.append('"').toString();
    }

    static HttpURLConnection open(String url) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
        c.setConnectTimeout(30_000);
        c.setReadTimeout(60_000);
        return c;
    }

    static void get(String url) throws Exception {
        HttpURLConnection c = open(url);
        int status = c.getResponseCode();
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        long n = 0;
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
            byte[] buf = new byte[65536];
            for (int r; in != null && (r = in.read(buf)) > 0; ) {
                md.update(buf, 0, r);
                if (head.size() < 4096) head.write(buf, 0, Math.min(r, 4096 - head.size()));
                n += r;
            }
        }
        String xsha = c.getHeaderField("X-Sha256");
        System.out.println("{\"status\":" + status + ",\"bytes\":" + n + ",\"sha256\":" + json(hex(md.digest()))
                + ",\"xSha256\":" + json(xsha == null ? "" : xsha) + ",\"text\":" + json(head.toString(StandardCharsets.ISO_8859_1)) + "}");
    }

    /** xorshift32 bytes: any deterministic stream will do, the origin hashes what it receives. */
    static void post(String url, long total) throws Exception {
        HttpURLConnection c = open(url);
        c.setRequestMethod("POST");
        c.setDoOutput(true);
        c.setFixedLengthStreamingMode(total);
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        int x = 12345;
        byte[] buf = new byte[65536];
        try (OutputStream out = c.getOutputStream()) {
            for (long sent = 0; sent < total; ) {
                int len = (int) Math.min(buf.length, total - sent);
                for (int i = 0; i < len; i++) {
                    x ^= x << 13;
                    x ^= x >>> 17;
                    x ^= x << 5;
                    buf[i] = (byte) x;
                }
                md.update(buf, 0, len);
                out.write(buf, 0, len);
                sent += len;
            }
        }
        int status = c.getResponseCode();
        String body = new String(c.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        System.out.println("{\"status\":" + status + ",\"text\":" + json(body) + ",\"sentSha256\":" + json(hex(md.digest())) + "}");
    }

    static void raw(String host, int port, String text) throws Exception {
        try (Socket s = new Socket()) {
            s.setSoTimeout(30_000);
            // An unresolved address: with a SOCKS proxy the JDK then sends the name (SOCKS5
            // ATYP 0x03 / SOCKS4a) and the proxy resolves it.
            s.connect(InetSocketAddress.createUnresolved(host, port), 30_000);
            s.getOutputStream().write(text.getBytes(StandardCharsets.UTF_8));
            s.shutdownOutput();
            String back = new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            System.out.println("{\"text\":" + json(back) + "}");
        }
    }
}
