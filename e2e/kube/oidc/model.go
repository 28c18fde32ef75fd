package main

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Config is the JSON file named by --config: the users who can sign in and the one client.
type Config struct {
	Users  []User       `json:"users"`
	Client ClientConfig `json:"client"`
}

// User signs in with Username and Password; tokens name them by Username (`sub`,
// `preferred_username`), Email and Groups (`groups`).
type User struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"`
}

// ClientConfig is a web client of the authorization-code flow. Without a secret it is public
// (auth method "none", PKCE required); with one it authenticates by HTTP Basic or form post.
type ClientConfig struct {
	ID           string   `json:"id"`
	Secret       string   `json:"secret"`
	RedirectURIs []string `json:"redirect_uris"`
}

type client struct{ ClientConfig }

func (c *client) GetID() string                       { return c.ID }
func (c *client) RedirectURIs() []string              { return c.ClientConfig.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType        { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string           { return loginPath + "?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return time.Hour }
func (c *client) ClockSkew() time.Duration            { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

// IsScopeAllowed accepts the `groups` scope many clients ask for; the claim is there either way.
func (c *client) IsScopeAllowed(scope string) bool { return scope == "groups" }

// DevMode lets a test's redirect target be plain HTTP on loopback.
func (c *client) DevMode() bool { return true }

// IDTokenUserinfoClaimsAssertion puts the profile and email claims into the id_token even
// when an access token is issued too: the API server sees the id_token alone.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.Secret == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// authRequest is one sign-in in progress: the authorize request and, once the form is
// submitted, who signed in.
type authRequest struct {
	oidc.AuthRequest
	id        string
	challenge *oidc.CodeChallenge
	subject   string
	authTime  time.Time
	done      bool
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string                 { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.Nonce }
func (a *authRequest) GetRedirectURI() string                { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                   { return a.Scopes }
func (a *authRequest) GetState() string                      { return a.State }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

// directRequest is an id_token request without a browser (see testToken).
type directRequest struct {
	subject  string
	clientID string
	scopes   []string
	authTime time.Time
}

func (d directRequest) GetAMR() []string       { return []string{"pwd"} }
func (d directRequest) GetAudience() []string  { return []string{d.clientID} }
func (d directRequest) GetAuthTime() time.Time { return d.authTime }
func (d directRequest) GetClientID() string    { return d.clientID }
func (d directRequest) GetScopes() []string    { return d.scopes }
func (d directRequest) GetSubject() string     { return d.subject }

func randomID() string {
	bytes := make([]byte, 16)
	_, _ = rand.Read(bytes)
	return hex.EncodeToString(bytes)
}
