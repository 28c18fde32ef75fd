package main

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage keeps everything in memory: the configured users and client, the sign-ins in
// progress, their codes and the access tokens issued (for the userinfo endpoint).
type storage struct {
	client *client
	users  map[string]User
	key    signingKey

	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]string // code → auth request ID
	tokens   map[string]accessToken
}

type accessToken struct {
	subject string
	scopes  []string
	expires time.Time
}

var errUnsupported = errors.New("not supported by this test provider")

func newStorage(config Config, key signingKey) *storage {
	users := make(map[string]User, len(config.Users))
	for _, user := range config.Users {
		users[user.Username] = user
	}
	return &storage{
		client:   &client{config.Client},
		users:    users,
		key:      key,
		requests: map[string]*authRequest{},
		codes:    map[string]string{},
		tokens:   map[string]accessToken{},
	}
}

// authenticate returns the user `username` if `password` is theirs.
func (s *storage) authenticate(username, password string) (User, error) {
	user, ok := s.users[username]
	if !ok || subtle.ConstantTimeCompare([]byte(user.Password), []byte(password)) != 1 {
		return User{}, errors.New("wrong username or password")
	}
	return user, nil
}

// signIn completes sign-in `id` as `username` when the password matches.
func (s *storage) signIn(id, username, password string) error {
	user, err := s.authenticate(username, password)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	request, ok := s.requests[id]
	if !ok {
		return errors.New("this sign-in has expired; start again")
	}
	request.subject = user.Username
	request.authTime = time.Now()
	request.done = true
	return nil
}

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if len(req.Prompt) == 1 && req.Prompt[0] == oidc.PromptNone {
		// No session is kept: a sign-in always shows the form.
		return nil, oidc.ErrLoginRequired()
	}
	request := &authRequest{id: randomID(), AuthRequest: *req}
	if req.CodeChallenge != "" {
		request.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[request.id] = request
	return request, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if request, ok := s.requests[id]; ok {
		return request, nil
	}
	return nil, fmt.Errorf("auth request %q not found", id)
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("unknown code")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest runs once a code is exchanged: the code cannot be used again.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, requestID := range s.codes {
		if requestID == id {
			delete(s.codes, code)
		}
	}
	return nil
}

func (s *storage) CreateAccessToken(_ context.Context, request op.TokenRequest) (string, time.Time, error) {
	id := randomID()
	expires := time.Now().Add(time.Hour)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[id] = accessToken{subject: request.GetSubject(), scopes: request.GetScopes(), expires: expires}
	return id, expires, nil
}

// The client is not given the refresh_token grant, so the library never asks for these.
func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errUnsupported
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) RevokeToken(_ context.Context, token, _, _ string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
	return nil
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.client.ID {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	return s.client, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != s.client.ID || s.client.Secret == "" ||
		subtle.ConstantTimeCompare([]byte(s.client.Secret), []byte(secret)) != 1 {
		return errors.New("wrong client credentials")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated upstream in favour of SetUserinfoFromRequest.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the claims of an id_token.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, request op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(info, request.GetSubject(), scopes)
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	token, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(token.expires) {
		return errors.New("token is invalid or has expired")
	}
	return s.setUserinfo(info, token.subject, token.scopes)
}

// setUserinfo sets the claims `scopes` grant, and always the user's groups (what the API
// server maps to Kubernetes groups).
func (s *storage) setUserinfo(info *oidc.UserInfo, username string, scopes []string) error {
	user, ok := s.users[username]
	if !ok {
		return fmt.Errorf("unknown user %q", username)
	}
	info.Subject = user.Username
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeProfile:
			info.PreferredUsername = user.Username
			info.Name = user.Username
		case oidc.ScopeEmail:
			info.Email = user.Email
			info.EmailVerified = true
		}
	}
	info.AppendClaims("groups", user.Groups)
	return nil
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errUnsupported
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errUnsupported
}

func (s *storage) Health(context.Context) error { return nil }

// signingKey signs every token: one RSA key per run, published in the JWKS.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }
