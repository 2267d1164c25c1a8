package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServe_ChunkedWithContentLengthClosesTheConnection: RFC 9112 §6.1 says
// a server MUST close the connection after responding to a request with
// both Transfer-Encoding and Content-Length (a smuggling attempt, or a
// broken proxy). One with Content-Length alone keeps it open.
func TestServe_ChunkedWithContentLengthClosesTheConnection(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, dataDir, newMasterKey(t))
	key := createKey(t, dataDir, "acme", "Secret.Read", "Secret.Write")
	addr := strings.TrimPrefix(srv.base, "http://")
	body := `{"value":"v"}`

	for _, tc := range []struct {
		name      string
		request   string
		wantClose bool
	}{
		{"ChunkedAndContentLength", "PUT /api/acme/secrets/k HTTP/1.1\r\nHost: x\r\nX-API-KEY: " + key +
			"\r\nContent-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"d\r\n" + body + "\r\n0\r\n\r\n", true},
		// net/http hides which of the two it was given, so a chunked body
		// alone closes too (see httpapi's ServeHTTP).
		{"ChunkedOnly", "PUT /api/acme/secrets/k HTTP/1.1\r\nHost: x\r\nX-API-KEY: " + key +
			"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"d\r\n" + body + "\r\n0\r\n\r\n", true},
		{"ContentLengthOnly", "PUT /api/acme/secrets/k HTTP/1.1\r\nHost: x\r\nX-API-KEY: " + key +
			"\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n" + body, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, tc.request); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 204 {
				t.Fatalf("status = %d, want 204 (the chunked body frames the request)", resp.StatusCode)
			}
			if resp.Close != tc.wantClose {
				t.Errorf("Connection: close = %v (header %q), want %v", resp.Close, resp.Header.Get("Connection"), tc.wantClose)
			}
			if !tc.wantClose {
				return
			}
			// The server closes its side: the next read ends, with no
			// further response.
			n, err := br.Read(make([]byte, 1))
			if n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("after the response: read %d bytes, err %v; want EOF (connection closed)", n, err)
			}
		})
	}
}
