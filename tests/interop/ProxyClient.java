/*
 * Java clients for the HTTP and SOCKS end-to-end tests (tests/http-clients.e2e.test.ts,
 * tests/socks.e2e.test.ts), run as a single-file source program:
 * `java [-D...] tests/interop/ProxyClient.java <api> <mode> ...` or `... raw HOST PORT TEXT`.
 *
 * The proxy comes from the standard system properties, as a user would configure a JVM:
 * -Dhttp.proxyHost/-Dhttp.proxyPort (http: URLs, absolute-form requests),
 * -Dhttps.proxyHost/-Dhttps.proxyPort (https: URLs, CONNECT tunnels), or -DsocksProxyHost/
 * -DsocksProxyPort (-DsocksProxyVersion=4 for SOCKS4). The JDK's DefaultProxySelector skips the
 * proxy for localhost, 127.* and [::1] unless the matching *nonProxyHosts property is the empty
 * string (a non-empty value gets the loopback defaults appended): -Dhttp.nonProxyHosts= covers
 * http and https URLs, -DsocksNonProxyHosts= plain sockets.
 *
 * APIs:
 *   urlconn     java.net.HttpURLConnection (DefaultProxySelector, i.e. the properties above)
 *   httpclient  java.net.http.HttpClient with ProxySelector.of(http.proxyHost:http.proxyPort),
 *               which proxies every URL (no nonProxyHosts); default version (HTTP/2 preferred:
 *               over a proxy and for http: it speaks HTTP/1.1, for https: ALPN decides)
 * Modes (one JSON line on stdout, exit 0; any exception: message on stderr, exit 1):
 *   get URL      GET; prints status, body length, body sha256, X-Sha256 header, body head
 *   post URL N   POSTs N deterministic bytes; prints status, the response body (the origin's
 *                sha256 of what it got) and the sha256 of what was sent
 *   raw HOST PORT TEXT   a plain java.net.Socket to HOST:PORT through the SOCKS proxy: writes
 *                TEXT, half-closes (shutdownOutput), reads to EOF; prints what came back
 * For https the trust store comes from -Djavax.net.ssl.trustStore (the test CA).
 */
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.ProxySelector;
import java.net.Socket;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;

public class ProxyClient {
    public static void main(String[] args) throws Exception {
        try {
            if (args[0].equals("raw")) {
                raw(args[1], Integer.parseInt(args[2]), args[3]);
                return;
            }
            String api = args[0], mode = args[1], url = args[2];
            long n = mode.equals("post") ? Long.parseLong(args[3]) : -1;
            switch (api) {
                case "urlconn" -> urlconn(url, n);
                case "httpclient" -> httpclient(url, n);
                default -> throw new IllegalArgumentException("unknown api " + api);
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

    /** xorshift32 bytes: any deterministic stream will do, the origin hashes what it receives. */
    static byte[] pattern(long total, MessageDigest md) {
        byte[] out = new byte[(int) total];
        int x = 12345;
        for (int i = 0; i < out.length; i++) {
            x ^= x << 13;
            x ^= x >>> 17;
            x ^= x << 5;
            out[i] = (byte) x;
        }
        md.update(out);
        return out;
    }

    static void print(int status, byte[] body, String xsha, String sentSha) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update(body);
        String head = new String(body, 0, Math.min(body.length, 4096), StandardCharsets.ISO_8859_1);
        System.out.println("{\"status\":" + status + ",\"bytes\":" + body.length + ",\"sha256\":" + json(hex(md.digest()))
                + ",\"xSha256\":" + json(xsha == null ? "" : xsha) + ",\"text\":" + json(head)
                + (sentSha == null ? "" : ",\"sentSha256\":" + json(sentSha)) + "}");
    }

    static void urlconn(String url, long n) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
        c.setConnectTimeout(30_000);
        c.setReadTimeout(60_000);
        String sent = null;
        if (n >= 0) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] body = pattern(n, md);
            sent = hex(md.digest());
            c.setRequestMethod("POST");
            c.setDoOutput(true);
            c.setFixedLengthStreamingMode(body.length);
            try (OutputStream out = c.getOutputStream()) {
                out.write(body);
            }
        }
        int status = c.getResponseCode();
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
            if (in != null) in.transferTo(all);
        }
        // usingProxy() reports HTTP proxies only (a SOCKS proxy sits below the connection).
        if (System.getProperty("http.proxyHost") != null && !c.usingProxy()) {
            throw new IllegalStateException("HttpURLConnection did not use the proxy for " + url);
        }
        print(status, all.toByteArray(), c.getHeaderField("X-Sha256"), sent);
    }

    static void httpclient(String url, long n) throws Exception {
        String host = System.getProperty("http.proxyHost");
        int port = Integer.getInteger("http.proxyPort");
        HttpClient client = HttpClient.newBuilder()
                .proxy(ProxySelector.of(new InetSocketAddress(host, port)))
                .connectTimeout(Duration.ofSeconds(30))
                .build();
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(60));
        String sent = null;
        if (n >= 0) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] body = pattern(n, md);
            sent = hex(md.digest());
            b.POST(HttpRequest.BodyPublishers.ofByteArray(body));
        }
        HttpResponse<byte[]> r = client.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
        print(r.statusCode(), r.body(), r.headers().firstValue("X-Sha256").orElse(""), sent);
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
