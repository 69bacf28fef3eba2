// A Go net/http client for the HTTP and SOCKS end-to-end tests (tests/http-clients.e2e.test.ts,
// tests/socks.e2e.test.ts). Standard library only. net/http speaks SOCKS5 itself for socks5://
// proxy URLs (it sends the host name, so the proxy resolves it), with RFC 1929 username/password
// from the URL's user info.
//
// By default the proxy comes from the environment (HTTP_PROXY / HTTPS_PROXY, through
// http.ProxyFromEnvironment), as a Go program normally gets it. Go never proxies requests to
// "localhost" or loopback IPs that way, so the tests address the origins by the machine's host
// name (which resolves to 127.0.0.1). -proxy URL sets Transport.Proxy = http.ProxyURL(URL) instead,
// for machines whose host name does not resolve to loopback.
//
// Usage: proxy_client -url URL [-proxy URL] [-cacert FILE] [-servername NAME] [-post N] [-require-proxy]
//   -servername: the TLS name to verify (the test certificate covers localhost / 127.0.0.1 / ::1,
//                not the machine's host name)
//   -require-proxy: fail unless a proxy was selected for the URL (catches a silent bypass)
// Prints one JSON line: {"status":..,"bytes":..,"sha256":..,"xSha256":..,"text":..,"proxy":..,"sentSha256":..}
// and exits 0; a transport error is printed on stderr with exit code 1.
package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// patternReader yields n bytes of xorshift32 output and hashes what it hands out.
type patternReader struct {
	left int64
	x    uint32
	h    hash.Hash
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		r.x ^= r.x << 13
		r.x ^= r.x >> 17
		r.x ^= r.x << 5
		p[i] = byte(r.x)
	}
	r.left -= int64(len(p))
	r.h.Write(p)
	return len(p), nil
}

func main() {
	target := flag.String("url", "", "URL to fetch")
	proxy := flag.String("proxy", "", "explicit proxy URL (default: HTTP_PROXY/HTTPS_PROXY from the environment)")
	caFile := flag.String("cacert", "", "PEM CA bundle for https targets")
	serverName := flag.String("servername", "", "TLS server name to verify")
	post := flag.Int64("post", -1, "POST this many deterministic bytes instead of GET")
	requireProxy := flag.Bool("require-proxy", false, "fail unless a proxy is used for the URL")
	flag.Parse()

	proxyFunc := http.ProxyFromEnvironment
	if *proxy != "" {
		u, err := url.Parse(*proxy)
		if err != nil {
			fail(err)
		}
		proxyFunc = http.ProxyURL(u)
	}
	tlsConfig := &tls.Config{ServerName: *serverName}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fail(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail(fmt.Errorf("no certificate in %s", *caFile))
		}
		tlsConfig.RootCAs = pool
	}
	var used string
	transport := &http.Transport{
		Proxy: func(r *http.Request) (*url.URL, error) {
			u, err := proxyFunc(r)
			if u != nil {
				used = u.String()
			}
			return u, err
		},
		TLSClientConfig: tlsConfig,
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: transport}

	var resp *http.Response
	var err error
	sent := &patternReader{x: 12345, h: sha256.New()}
	if *post >= 0 {
		sent.left = *post
		req, err := http.NewRequest("POST", *target, sent)
		if err != nil {
			fail(err)
		}
		req.ContentLength = *post
		resp, err = client.Do(req)
		if err != nil {
			fail(err)
		}
	} else {
		resp, err = client.Get(*target)
		if err != nil {
			fail(err)
		}
	}
	defer resp.Body.Close()
	if *requireProxy && used == "" {
		fail(fmt.Errorf("no proxy was used for %s (HTTP_PROXY=%q HTTPS_PROXY=%q)", *target, os.Getenv("HTTP_PROXY"), os.Getenv("HTTPS_PROXY")))
	}
	h := sha256.New()
	head := make([]byte, 0, 4096)
	var n int64
	buf := make([]byte, 64*1024)
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if room := cap(head) - len(head); room > 0 {
				if k < room {
					room = k
				}
				head = append(head, buf[:room]...)
			}
			n += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
		}
	}
	out := map[string]interface{}{
		"status":  resp.StatusCode,
		"bytes":   n,
		"sha256":  hex.EncodeToString(h.Sum(nil)),
		"xSha256": resp.Header.Get("X-Sha256"),
		"text":    string(head),
		"proxy":   used,
	}
	if *post >= 0 {
		out["sentSha256"] = hex.EncodeToString(sent.h.Sum(nil))
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
