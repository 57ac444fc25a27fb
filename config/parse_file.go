package config

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// The parsers of values that name files: the admin token and a
// listener's certificate and key. Each returns an error whose message
// follows "path.of.key: ".

// readFile reads the file named by the string in n, resolved against base
// (the config file's folder); it returns the absolute path (when n names
// one) and the contents.
func readFile(base string, n *yaml.Node) (string, []byte, error) {
	path, err := parsePath(base, n)
	if err != nil {
		return "", nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			err = fmt.Errorf("file %q does not exist", path)
		case errors.As(err, &pe):
			err = fmt.Errorf("cannot read %q: %v", path, pe.Err)
		default:
			err = fmt.Errorf("cannot read %q: %v", path, err)
		}
		return path, nil, err
	}
	return path, data, nil
}

// MinTokenLength is the shortest admin token accepted.
const MinTokenLength = 16

// token68RE is RFC 6750's b64token (RFC 9110's token68).
var token68RE = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// parseTokenFile reads a bearer token from the file named in n: its
// contents without surrounding white space, at least MinTokenLength
// characters of RFC 6750's token68 alphabet. Errors never show the token.
func parseTokenFile(base string, n *yaml.Node) (Secret, error) {
	path, data, err := readFile(base, n)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	switch {
	case len(tok) < MinTokenLength:
		return "", fmt.Errorf("the token in %q is %d characters long; use at least %d (e.g. the output of \"openssl rand -hex 32\")",
			path, len(tok), MinTokenLength)
	case !token68RE.MatchString(tok):
		return "", fmt.Errorf("the token in %q must be one line of letters, digits and - . _ ~ + / (then optional =), as a Bearer token is", path)
	}
	return Secret(tok), nil
}

// loadKeyPair checks that a certificate (chain) and key, read from the
// files cert and key, load as a pair, and returns the listener's TLS.
func loadKeyPair(cert, key string, certPEM, keyPEM []byte) (*TLSConfig, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cert %q and key %q do not load as a pair: %v", cert, key, err)
	}
	return &TLSConfig{Cert: cert, Key: key, Certificate: &pair, Fingerprint: CertFingerprint(certPEM, keyPEM)}, nil
}

// CertFingerprint is the TLSConfig.Fingerprint of a cert and key file's contents.
func CertFingerprint(certPEM, keyPEM []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(certPEM)))
	h.Write(n[:])
	h.Write(certPEM)
	h.Write(keyPEM)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}
