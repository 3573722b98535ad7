// Command opkgo drives the OpenPubkey Go library (github.com/openpubkey/openpubkey, the
// version pinned in go.mod) for opkey's interoperability tests: one JSON request on standard
// input, one JSON answer on standard output.
//
//	opkgo inspect  parse a PK token (JSON or compact); report Go's hash, commitment, serializations
//	opkgo verify   VerifyPKToken configured as Go's providers configure themselves, then
//	               VerifySignedMessage for each message; the provider keys are a pinned JWKS
//	opkgo mint     PK tokens and signed messages made by OpenPubkey's own client and providers
//	opkgo bench    time verification in a loop and report ns/op
//
// A failed check is an answer ({"ok": false, "error": …}), not a crash: the exit status is
// non-zero only when the request itself cannot be understood.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: opkgo inspect|verify|mint|bench < request.json"))
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	// The library prints progress to standard output (the mock OP does); keep the answer apart.
	answerTo := os.Stdout
	os.Stdout = os.Stderr
	var answer any
	switch os.Args[1] {
	case "inspect":
		answer, err = inspect(input)
	case "verify":
		answer, err = verify(input)
	case "mint":
		answer, err = mint(input)
	case "bench":
		answer, err = bench(input)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
	out, err := json.Marshal(answer)
	if err != nil {
		fail(err)
	}
	answerTo.Write(append(out, '\n'))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "opkgo:", err)
	os.Exit(2)
}

// errText is the message of err, or "" for nil (JSON answers carry errors as text).
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
