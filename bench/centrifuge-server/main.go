// centrifuge-server: the benchmark's stand-in for Centrifugo v6.
//
// The Go module proxy serves no Centrifugo v6 release here (403 for the
// version list and for exact versions), so the `centrifugo` target runs the
// engine Centrifugo is built on, github.com/centrifugal/centrifuge, set up the
// way the generated Centrifugo config would: memory engine, anonymous connect
// and subscribe in one namespace ("chat:"), history on (size and TTL per
// flags), JSON protocol v2 on /connection/websocket, and Centrifugo's HTTP API
// shape for publishing: POST /api/publish {"channel","data"} with X-API-Key,
// answered {"result":{}}. The fan-out, encoding, queueing and write batching
// are the library's, as in Centrifugo.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
)

type publishRequest struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "HTTP listen address")
	apiKey := flag.String("api-key", "bench", "HTTP API key (X-API-Key)")
	namespace := flag.String("namespace", "chat", "the one channel namespace")
	historySize := flag.Int("history-size", 100, "publications kept per channel")
	historyTTL := flag.Duration("history-ttl", 300*time.Second, "history retention")
	reusePort := flag.Bool("reuseport", false, "listen with SO_REUSEPORT (several processes on one port)")
	flag.Parse()

	node, err := centrifuge.New(centrifuge.Config{
		LogLevel:       centrifuge.LogLevelError,
		HistoryMetaTTL: 24 * time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	prefix := *namespace + ":"
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		// Anonymous connect, like client.allow_anonymous_connect_without_token.
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: ""}}, nil
	})
	node.OnConnect(func(client *centrifuge.Client) {
		client.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			if !strings.HasPrefix(e.Channel, prefix) {
				cb(centrifuge.SubscribeReply{}, centrifuge.ErrorUnknownChannel)
				return
			}
			cb(centrifuge.SubscribeReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin: func(*http.Request) bool { return true },
	}))
	mux.HandleFunc("/api/publish", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != *apiKey {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var req publishRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Channel == "" {
			http.Error(w, `{"error":{"code":107,"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		if _, err := node.Publish(req.Channel, req.Data,
			centrifuge.WithHistory(*historySize, *historyTTL)); err != nil {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"error":{"code":100,"message":"internal server error"}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"result":{}}`))
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("{}"))
	})

	lc := net.ListenConfig{}
	if *reusePort {
		lc.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("centrifuge-server listening on %s", *listen)
	log.Fatal(http.Serve(ln, mux))
}
