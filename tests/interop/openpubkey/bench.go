package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/openpubkey/openpubkey/pktoken"
)

type benchEntry struct {
	PKToken string `json:"pktoken"` // JSON serialization, as text
	OSM     string `json:"osm"`
}

type benchRequest struct {
	verifierConfig
	Entries    []benchEntry `json:"entries"`
	Iterations int          `json:"iterations"`
}

// bench times one verification per iteration: parse the PK token's JSON, VerifyPKToken,
// VerifySignedMessage. Entries are taken in turn, so one entry measures a repeated token and
// many distinct entries measure fresh ones (Go keeps no cache either way).
func bench(input []byte) (any, error) {
	var request benchRequest
	if err := json.Unmarshal(input, &request); err != nil {
		return nil, err
	}
	if len(request.Entries) == 0 || request.Iterations <= 0 {
		return nil, fmt.Errorf("bench needs entries and a positive iteration count")
	}
	v, checks, err := newVerifier(request.verifierConfig)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	once := func(entry benchEntry) error {
		pkt := &pktoken.PKToken{}
		if err := json.Unmarshal([]byte(entry.PKToken), pkt); err != nil {
			return err
		}
		if err := v.VerifyPKToken(ctx, pkt, checks...); err != nil {
			return err
		}
		_, err := pkt.VerifySignedMessage([]byte(entry.OSM))
		return err
	}
	if err := once(request.Entries[0]); err != nil { // warm up, and fail early
		return nil, err
	}
	start := time.Now()
	for i := 0; i < request.Iterations; i++ {
		if err := once(request.Entries[i%len(request.Entries)]); err != nil {
			return nil, err
		}
	}
	elapsed := time.Since(start)
	return map[string]any{
		"ok":         true,
		"iterations": request.Iterations,
		"ns_per_op":  float64(elapsed.Nanoseconds()) / float64(request.Iterations),
	}, nil
}
