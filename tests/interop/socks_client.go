// A Go net/http client for the SOCKS end-to-end tests (tests/socks.e2e.test.ts). Standard library
// only. The proxy is set explicitly with Transport.Proxy = http.ProxyURL(...): Go's
// ProxyFromEnvironment never proxies localhost or loopback targets, and would ignore ALL_PROXY.
// net/http speaks SOCKS5 itself for socks5:// proxy URLs (it sends the host name, so the proxy
// resolves it), with RFC 1929 username/password taken from the URL's user info.
//
// Usage: socks_client -proxy socks5://127.0.0.1:P -url URL [-cacert FILE] [-post N]
// Prints one JSON line: {"status":..,"bytes":..,"sha256":..,"xSha256":..,"text":..,"sentSha256":..}
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
	proxy := flag.String("proxy", "", "proxy URL, e.g. socks5://127.0.0.1:1080")
	target := flag.String("url", "", "URL to fetch")
	caFile := flag.String("cacert", "", "PEM CA bundle for https targets")
	post := flag.Int64("post", -1, "POST this many deterministic bytes instead of GET")
	flag.Parse()

	proxyURL, err := url.Parse(*proxy)
	if err != nil {
		fail(err)
	}
	tlsConfig := &tls.Config{}
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
	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: tlsConfig},
	}

	var resp *http.Response
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
