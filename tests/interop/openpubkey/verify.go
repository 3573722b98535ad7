package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/openpubkey/openpubkey/discover"
	"github.com/openpubkey/openpubkey/pktoken"
	"github.com/openpubkey/openpubkey/providers"
	"github.com/openpubkey/openpubkey/verifier"
)

// verifierConfig says how to build Go's verifier for one issuer.
type verifierConfig struct {
	Issuer string `json:"issuer"`
	// Style is the Go provider whose verifier settings to use: "github" (AUD_CLAIM, GQ only,
	// no client id; Forgejo tokens have the same shape, and v0.26.0 has no Forgejo provider), "aud" (AUD_CLAIM without GQ, for RS256 comparisons),
	// "gitlab" (GQ_BOUND, GQ only, no client id), "standard"
	// (NONCE_CLAIM with the client id, as StandardOp), "keybound" (KEY_BOUND with the client
	// id, as KeyBindingOp).
	Style    string `json:"style"`
	ClientID string `json:"client_id,omitempty"`
	// GQOnly adds GQOnly to the "standard" style (a browser provider with GQSign).
	GQOnly bool `json:"gq_only,omitempty"`
	// JWKS is the provider's key set, pinned: Go fetches nothing.
	JWKS json.RawMessage `json:"jwks"`
	// Expiration is "never" (default), "oidc", "24h" or "refreshed".
	Expiration string `json:"expiration,omitempty"`
}

type message struct {
	OSM string `json:"osm"`
	Typ string `json:"typ,omitempty"`
}

type verifyRequest struct {
	verifierConfig
	PKToken  json.RawMessage `json:"pktoken"`
	Messages []message       `json:"messages"`
}

type messageResult struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Content []byte `json:"content,omitempty"`
}

func providerOptions(config verifierConfig) (providers.ProviderVerifierOpts, error) {
	jwks := []byte(config.JWKS)
	finder := &discover.PublicKeyFinder{
		JwksFunc: func(_ context.Context, issuer string) ([]byte, error) {
			if issuer != config.Issuer {
				return nil, fmt.Errorf("no pinned JWKS for issuer %s", issuer)
			}
			return jwks, nil
		},
	}
	opts := providers.ProviderVerifierOpts{DiscoverPublicKey: finder}
	switch config.Style {
	case "github":
		opts.CommitType = providers.CommitTypesEnum.AUD_CLAIM
		opts.GQOnly = true
		opts.SkipClientIDCheck = true
	case "aud":
		opts.CommitType = providers.CommitTypesEnum.AUD_CLAIM
		opts.SkipClientIDCheck = true
	case "gitlab":
		opts.CommitType = providers.CommitTypesEnum.GQ_BOUND
		opts.GQOnly = true
		opts.SkipClientIDCheck = true
	case "standard":
		opts.CommitType = providers.CommitTypesEnum.NONCE_CLAIM
		opts.ClientID = config.ClientID
		opts.GQOnly = config.GQOnly
	case "keybound":
		opts.CommitType = providers.CommitTypesEnum.KEY_BOUND
		opts.ClientID = config.ClientID
	default:
		return opts, fmt.Errorf("unknown verifier style %q", config.Style)
	}
	return opts, nil
}

func newVerifier(config verifierConfig) (*verifier.Verifier, []verifier.Check, error) {
	opts, err := providerOptions(config)
	if err != nil {
		return nil, nil, err
	}
	pv := providers.NewProviderVerifier(config.Issuer, opts)
	var options []verifier.VerifierOpts
	switch config.Expiration {
	case "", "never":
		options = append(options, verifier.WithExpirationPolicy(verifier.ExpirationPolicies.NEVER_EXPIRE))
	case "oidc":
		options = append(options, verifier.WithExpirationPolicy(verifier.ExpirationPolicies.OIDC))
	case "24h":
		options = append(options, verifier.WithExpirationPolicy(verifier.ExpirationPolicies.MAX_AGE_24HOURS))
	case "refreshed":
		options = append(options, verifier.WithExpirationPolicy(verifier.ExpirationPolicies.OIDC_REFRESHED))
	default:
		return nil, nil, fmt.Errorf("unknown expiration %q", config.Expiration)
	}
	var checks []verifier.Check
	if opts.GQOnly {
		checks = append(checks, verifier.GQOnly())
	}
	v, err := verifier.New(pv, options...)
	return v, checks, err
}

func verifyMessages(pkt *pktoken.PKToken, messages []message) []messageResult {
	results := []messageResult{}
	for _, m := range messages {
		var options []pktoken.OptionFunc
		if m.Typ != "" {
			options = append(options, pktoken.WithTyp(m.Typ))
		}
		content, err := pkt.VerifySignedMessage([]byte(m.OSM), options...)
		results = append(results, messageResult{OK: err == nil, Error: errText(err), Content: content})
	}
	return results
}

func verify(input []byte) (any, error) {
	var request verifyRequest
	if err := json.Unmarshal(input, &request); err != nil {
		return nil, err
	}
	v, checks, err := newVerifier(request.verifierConfig)
	if err != nil {
		return nil, err
	}
	pkt, err := parsePKToken(request.PKToken)
	if err != nil {
		return map[string]any{"ok": false, "error": "parse: " + err.Error()}, nil
	}
	if err := v.VerifyPKToken(context.Background(), pkt, checks...); err != nil {
		return map[string]any{"ok": false, "error": err.Error()}, nil
	}
	return map[string]any{"ok": true, "messages": verifyMessages(pkt, request.Messages)}, nil
}
