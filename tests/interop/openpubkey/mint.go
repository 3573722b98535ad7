package main

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"

	"github.com/openpubkey/openpubkey/client"
	"github.com/openpubkey/openpubkey/discover"
	"github.com/openpubkey/openpubkey/pktoken"
	"github.com/openpubkey/openpubkey/providers"
	"github.com/openpubkey/openpubkey/providers/mocks"
	"github.com/openpubkey/openpubkey/util"
)

type mintRequest struct {
	// Provider is "mock" (providers.MockProvider), "gitlab" (providers.GitlabCiOp reading the
	// ID token from an environment variable), "github" (providers.GithubOp from the job's
	// environment, requesting its ID token over HTTP) or "keybound" (the key-binding Hello
	// provider against Go's mock OP, through a real loopback browser flow).
	Provider string `json:"provider"`
	// CommitType for the mock provider: "nonce", "aud" or "gq_bound".
	CommitType string `json:"commit_type,omitempty"`
	GQSign     bool   `json:"gq_sign,omitempty"`
	Issuer     string `json:"issuer,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	// IDToken is the GitLab CI job's ID token (for "gitlab").
	IDToken string `json:"id_token,omitempty"`
	// RequestURL and RequestToken are the job's ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, and
	// GithubRoute the loopback base URL (http://127.0.0.1:PORT) that serves the GitHub issuer
	// (for "github").
	RequestURL   string `json:"request_url,omitempty"`
	RequestToken string `json:"request_token,omitempty"`
	GithubRoute  string `json:"github_route,omitempty"`
	// Alg is the ephemeral key's algorithm: ES256 (default), EdDSA or RS256.
	Alg         string            `json:"alg,omitempty"`
	ExtraClaims map[string]string `json:"extra_claims,omitempty"`
	// Messages are signed with the PK token's key (OSMs), in order.
	Messages [][]byte `json:"messages,omitempty"`
	// Refresh asks the provider for a refreshed ID token (mock provider only).
	Refresh bool `json:"refresh,omitempty"`
}

type mintAnswer struct {
	PKTokenJSON    json.RawMessage `json:"pktoken_json"`
	PKTokenCompact string          `json:"pktoken_compact"`
	Facts          *tokenFacts     `json:"facts"`
	JWKS           json.RawMessage `json:"jwks"`
	Issuer         string          `json:"issuer"`
	ClientID       string          `json:"client_id,omitempty"`
	OSMs           []string        `json:"osms"`
}

func mockCommitType(name string) (providers.CommitType, error) {
	switch name {
	case "", "nonce":
		return providers.CommitTypesEnum.NONCE_CLAIM, nil
	case "aud":
		return providers.CommitTypesEnum.AUD_CLAIM, nil
	case "gq_bound":
		return providers.CommitTypesEnum.GQ_BOUND, nil
	}
	return providers.CommitType{}, fmt.Errorf("unknown commit type %q", name)
}

// mockProvider is Go's mock provider configured the way its tests configure each commit type.
func mockProvider(request mintRequest) (providers.OpenIdProvider, []byte, error) {
	commitType, err := mockCommitType(request.CommitType)
	if err != nil {
		return nil, nil, err
	}
	opts := providers.DefaultMockProviderOpts()
	if request.Issuer != "" {
		opts.Issuer = request.Issuer
	}
	if request.ClientID != "" {
		opts.ClientID = request.ClientID
	}
	opts.CommitType = commitType
	opts.GQSign = request.GQSign || commitType.GQCommitment
	opts.VerifierOpts = providers.ProviderVerifierOpts{
		CommitType:        commitType,
		ClientID:          opts.ClientID,
		SkipClientIDCheck: commitType != providers.CommitTypesEnum.NONCE_CLAIM,
		GQOnly:            opts.GQSign,
	}
	op, backend, _, err := providers.NewMockProvider(opts)
	if err != nil {
		return nil, nil, err
	}
	jwks, err := backend.GetJwks()
	return op, jwks, err
}

// keyBoundProvider is OpenPubkey's key-binding provider (the one Hello uses) in front of Go's
// mock key-binding OP: a real authorization-code flow through a loopback listener, a DPoP
// proof on the token request, and an ID token of typ dpop+id_token with the key in cnf.jwk.
func keyBoundProvider(ctx context.Context, request mintRequest) (providers.OpenIdProvider, []byte, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close()
	opts := providers.GetDefaultHelloOpOptions()
	if request.Issuer != "" {
		opts.Issuer = request.Issuer
	}
	if request.ClientID != "" {
		opts.ClientID = request.ClientID
	}
	opts.RedirectURIs = []string{fmt.Sprintf("http://localhost:%d/login-callback", port)}
	op, err := providers.CreateMockHelloKeyBindingOpWithOpts(opts, mocks.UserBrowserInteractionMock{SubjectId: "alice@gmail.com"})
	if err != nil {
		return nil, nil, err
	}
	// The mock OP answers on the HTTP client it installed in the options.
	jwks, err := discover.GetJwksByIssuer(ctx, opts.Issuer, opts.HttpClient)
	return op, jwks, err
}

func gitlabProvider(ctx context.Context, request mintRequest) (providers.OpenIdProvider, []byte, error) {
	const variable = "OPKGO_GITLAB_ID_TOKEN"
	if err := os.Setenv(variable, request.IDToken); err != nil {
		return nil, nil, err
	}
	op := providers.NewGitlabCiOp(request.Issuer, variable)
	jwks, err := discover.GetJwksByIssuer(ctx, request.Issuer, http.DefaultClient)
	return op, jwks, err
}

// githubIssuer is the issuer OpenPubkey's GithubOp requires (a constant in the library).
const githubIssuer = "https://token.actions.githubusercontent.com"

// routedTransport sends the requests for one https origin to a loopback http server instead:
// GithubOp has its issuer built in, and fetches that issuer's discovery document and keys with
// Go's default HTTP client, so this is how it reaches a test provider on this machine.
type routedTransport struct {
	origin string
	target *url.URL
	inner  http.RoundTripper
}

func (t routedTransport) RoundTrip(request *http.Request) (*http.Response, error) {
	if request.URL.Scheme+"://"+request.URL.Host == t.origin {
		routed := request.Clone(request.Context())
		routed.URL.Scheme = t.target.Scheme
		routed.URL.Host = t.target.Host
		routed.Host = t.target.Host
		return t.inner.RoundTrip(routed)
	}
	return t.inner.RoundTrip(request)
}

// githubProvider is OpenPubkey's own GitHub Actions provider (GithubOp, from the job's
// environment), its requests to the GitHub issuer routed to the provider at GithubRoute.
func githubProvider(ctx context.Context, request mintRequest) (providers.OpenIdProvider, []byte, error) {
	target, err := url.Parse(request.GithubRoute)
	if err != nil || target.Scheme != "http" {
		return nil, nil, fmt.Errorf("github_route must be an http URL, got %q", request.GithubRoute)
	}
	http.DefaultTransport = routedTransport{origin: githubIssuer, target: target, inner: http.DefaultTransport}
	for name, value := range map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   request.RequestURL,
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": request.RequestToken,
	} {
		if err := os.Setenv(name, value); err != nil {
			return nil, nil, err
		}
	}
	op, err := providers.NewGithubOpFromEnvironment()
	if err != nil {
		return nil, nil, err
	}
	jwks, err := discover.GetJwksByIssuer(ctx, githubIssuer, nil)
	return op, jwks, err
}

func mint(input []byte) (any, error) {
	var request mintRequest
	if err := json.Unmarshal(input, &request); err != nil {
		return nil, err
	}
	ctx := context.Background()
	var op providers.OpenIdProvider
	var jwks []byte
	var err error
	switch request.Provider {
	case "mock":
		op, jwks, err = mockProvider(request)
	case "keybound":
		op, jwks, err = keyBoundProvider(ctx, request)
	case "gitlab":
		op, jwks, err = gitlabProvider(ctx, request)
	case "github":
		op, jwks, err = githubProvider(ctx, request)
	default:
		err = fmt.Errorf("unknown provider %q", request.Provider)
	}
	if err != nil {
		return nil, err
	}
	alg := request.Alg
	if alg == "" {
		alg = "ES256"
	}
	signer, err := util.GenKeyPair(alg)
	if err != nil {
		return nil, err
	}
	opk, err := client.New(op, client.WithSigner(signer, alg))
	if err != nil {
		return nil, err
	}
	var authOpts []client.AuthOpts
	for k, v := range request.ExtraClaims {
		authOpts = append(authOpts, client.WithExtraClaim(k, v))
	}
	pkt, err := opk.Auth(ctx, authOpts...)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if request.Refresh {
		if pkt, err = opk.Refresh(ctx); err != nil {
			return nil, fmt.Errorf("refresh: %w", err)
		}
	}
	return answer(pkt, signer, jwks, op, request)
}

func answer(pkt *pktoken.PKToken, signer crypto.Signer, jwks []byte, op providers.OpenIdProvider, request mintRequest) (*mintAnswer, error) {
	found, err := facts(pkt)
	if err != nil {
		return nil, err
	}
	osms := []string{}
	for _, content := range request.Messages {
		osm, err := pkt.NewSignedMessage(content, signer)
		if err != nil {
			return nil, fmt.Errorf("signed message: %w", err)
		}
		osms = append(osms, string(osm))
	}
	clientID := request.ClientID
	if browser, ok := op.(providers.BrowserOpenIdProvider); ok {
		clientID = browser.ClientID()
	} else if mock, ok := op.(*providers.MockProvider); ok {
		clientID = mock.ClientID()
	}
	return &mintAnswer{
		PKTokenJSON:    json.RawMessage(found.JSON),
		PKTokenCompact: found.Compact,
		Facts:          found,
		JWKS:           json.RawMessage(jwks),
		Issuer:         op.Issuer(),
		ClientID:       clientID,
		OSMs:           osms,
	}, nil
}
