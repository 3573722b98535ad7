package main

import (
	"encoding/json"
	"fmt"

	"github.com/openpubkey/openpubkey/pktoken"
	_ "github.com/openpubkey/openpubkey/providers" // registers GQ256 with jwx
)

type inspectRequest struct {
	// PKToken is the PK token as opkey wrote it: its JSON serialization (an object) or its
	// compact form (a string).
	PKToken json.RawMessage `json:"pktoken"`
}

// tokenFacts is what Go computes from a parsed PK token.
type tokenFacts struct {
	Hash         string `json:"hash"`
	Commitment   string `json:"commitment"`
	Compact      string `json:"compact"`
	JSON         string `json:"json"`
	Issuer       string `json:"issuer"`
	ProviderAlg  string `json:"provider_alg"`
	FreshIDToken string `json:"fresh_id_token,omitempty"`
}

// parsePKToken reads a PK token from a JSON string (compact form) or object (JSON form).
func parsePKToken(raw json.RawMessage) (*pktoken.PKToken, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("no pktoken in the request")
	}
	if raw[0] == '"' {
		var compact string
		if err := json.Unmarshal(raw, &compact); err != nil {
			return nil, err
		}
		return pktoken.NewFromCompact([]byte(compact))
	}
	pkt := &pktoken.PKToken{}
	if err := json.Unmarshal(raw, pkt); err != nil {
		return nil, err
	}
	return pkt, nil
}

func facts(pkt *pktoken.PKToken) (*tokenFacts, error) {
	hash, err := pkt.Hash()
	if err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	cic, err := pkt.GetCicValues()
	if err != nil {
		return nil, fmt.Errorf("cic: %w", err)
	}
	commitment, err := cic.Hash()
	if err != nil {
		return nil, fmt.Errorf("commitment: %w", err)
	}
	compact, err := pkt.Compact()
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	asJSON, err := json.Marshal(pkt)
	if err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	issuer, err := pkt.Issuer()
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	alg, _ := pkt.ProviderAlgorithm()
	return &tokenFacts{
		Hash:         hash,
		Commitment:   string(commitment),
		Compact:      string(compact),
		JSON:         string(asJSON),
		Issuer:       issuer,
		ProviderAlg:  string(alg),
		FreshIDToken: string(pkt.FreshIDToken),
	}, nil
}

func inspect(input []byte) (any, error) {
	var request inspectRequest
	if err := json.Unmarshal(input, &request); err != nil {
		return nil, err
	}
	pkt, err := parsePKToken(request.PKToken)
	if err != nil {
		return map[string]any{"ok": false, "error": "parse: " + err.Error()}, nil
	}
	found, err := facts(pkt)
	if err != nil {
		return map[string]any{"ok": false, "error": err.Error()}, nil
	}
	return map[string]any{"ok": true, "facts": found}, nil
}
