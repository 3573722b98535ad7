// Command ggcr-registry serves go-containerregistry's registry (pkg/registry) on loopback,
// with the OCI 1.1 referrers API switched on. `crane registry serve` runs the same registry
// but leaves referrers off and binds every interface; the tests need neither.
//
// Usage: ggcr-registry -address 127.0.0.1:PORT -blobs DIR [-log FILE]
//
// Blobs are stored under DIR; manifests and tags live in memory (that is how this registry
// is built), so a restart forgets them. It stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	address := flag.String("address", "127.0.0.1:0", "loopback address to listen on")
	blobs := flag.String("blobs", "", "directory for blobs (required)")
	logFile := flag.String("log", "", "file for the request log (default: none)")
	flag.Parse()
	if *blobs == "" {
		fmt.Fprintln(os.Stderr, "ggcr-registry: -blobs DIR is required")
		os.Exit(2)
	}
	host, _, err := net.SplitHostPort(*address)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ggcr-registry: bad -address: %v\n", err)
		os.Exit(2)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "ggcr-registry: refusing to listen on %q: loopback only\n", host)
		os.Exit(2)
	}
	if err := os.MkdirAll(*blobs, 0o700); err != nil {
		log.Fatalf("ggcr-registry: %v", err)
	}
	var requests io.Writer = io.Discard
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			log.Fatalf("ggcr-registry: %v", err)
		}
		defer f.Close()
		requests = f
	}
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatalf("ggcr-registry: %v", err)
	}
	server := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: registry.New(
			registry.WithReferrersSupport(true),
			registry.WithBlobHandler(registry.NewDiskBlobHandler(*blobs)),
			registry.Logger(log.New(requests, "", log.LstdFlags)),
		),
	}
	fmt.Fprintf(os.Stderr, "ggcr-registry: serving on %s\n", listener.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- server.Serve(listener) }()
	select {
	case err := <-done:
		log.Fatalf("ggcr-registry: %v", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("ggcr-registry: %v", err)
	}
}
