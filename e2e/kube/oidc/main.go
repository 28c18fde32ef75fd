// oidc-provider is the OpenID Connect provider of the tests: the authorization-code flow
// (with PKCE) for the users and the client of a JSON file, a plain HTML sign-in form,
// discovery, JWKS and userinfo, built on github.com/zitadel/oidc's `op` package. It serves
// HTTPS; the issuer is https://127.0.0.1:<port>. Test support only.
//
// Usage: oidc-provider --config users.json --tls-cert c.crt --tls-key c.key --issuer-file f
// (the JSON holds the users and the client; see Config; the issuer URL is written to f).
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/zitadel/oidc/v3/pkg/op"
)

func main() {
	configPath := flag.String("config", "", "JSON file with the users and the client")
	certFile := flag.String("tls-cert", "", "serving certificate (PEM)")
	keyFile := flag.String("tls-key", "", "its private key (PEM)")
	issuerFile := flag.String("issuer-file", "", "where to write the issuer URL once listening")
	flag.Parse()
	if *configPath == "" || *certFile == "" || *keyFile == "" || *issuerFile == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*configPath, *certFile, *keyFile, *issuerFile); err != nil {
		log.Fatal(err)
	}
}

func run(configPath, certFile, keyFile, issuerFile string) error {
	var config Config
	data, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &config); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	certificate, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	// Loopback only, on the port the kernel picks: known once listening, so no other server
	// can take it between choosing and binding it.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	issuer := fmt.Sprintf("https://%s", listener.Addr())

	storage := newStorage(config, signingKey{id: randomID(), key: rsaKey})
	opConfig := &op.Config{
		CodeMethodS256: true,
		AuthMethodPost: true,
	}
	// Encrypts the library's own opaque values (codes); new every run.
	if _, err := rand.Read(opConfig.CryptoKey[:]); err != nil {
		return err
	}
	provider, err := op.NewProvider(opConfig, storage, op.StaticIssuer(issuer))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	interceptor := op.NewIssuerInterceptor(provider.IssuerFromRequest)
	mux.Handle(loginPath, interceptor.Handler(&login{storage: storage, callback: op.AuthCallbackURL(provider)}))
	mux.Handle(testTokenPath, &testToken{storage: storage, issuer: issuer})
	mux.Handle("/", provider)

	// Written whole, then renamed: a reader never sees half a URL.
	if err := os.WriteFile(issuerFile+".partial", []byte(issuer), 0o644); err != nil {
		return err
	}
	if err := os.Rename(issuerFile+".partial", issuerFile); err != nil {
		return err
	}
	log.Printf("serving %s", issuer)
	server := &http.Server{
		Handler:   logRequests(mux),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{certificate}},
	}
	return server.ServeTLS(listener, "", "")
}

// logRequests logs each request's method and path (never its query: it carries codes).
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s", r.Method, r.URL.Path)
		next.ServeHTTP(w, r)
	})
}
