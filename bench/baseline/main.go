// Command baseline is the bare net/http ceiling the benchmark kit measures the
// service against: GET /api/{tenantId}/secrets/{key} with X-API-KEY checked in
// constant time and a fixed 24-byte text/plain body; no storage, no crypto,
// no audit. It is ../shared/bench/ceiling with two changes that do not touch
// the request path: no package-level variables, and it prints the address it
// actually listens on, so the kit can ask for port 0.
package main

import (
	"crypto/subtle"
	"flag"
	"log"
	"net"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8300", "listen address (port 0 picks a free one)")
	flag.Parse()
	apiKey := []byte("bench-api-key-0123456789abcdef")
	body := []byte("0123456789abcdefghijklmn") // 24 bytes

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/{tenantId}/secrets/{key}", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-KEY")), apiKey) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_ = r.PathValue("tenantId")
		_ = r.PathValue("key")
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("baseline listening on %s", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
