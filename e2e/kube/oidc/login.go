package main

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	loginPath     = "/login"
	testTokenPath = "/test/id-token"
)

// The sign-in form a browser fills in: the element ids are what tests select.
var loginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
{{if .Error}}<p id="error">{{.Error}}</p>{{end}}
<form method="post" action="` + loginPath + `">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<label>Username <input id="username" name="username" autocomplete="username" autofocus></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="submit" type="submit">Sign in</button>
</form>
</body></html>
`))

// login serves the form and checks what is submitted, then hands the sign-in back to the
// library, which redirects to the client with a code.
type login struct {
	storage  *storage
	callback func(context.Context, string) string
}

func (l *login) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.FormValue("authRequestID")
	switch r.Method {
	case http.MethodGet:
		render(w, http.StatusOK, id, "")
	case http.MethodPost:
		err := l.storage.signIn(id, r.FormValue("username"), r.FormValue("password"))
		if err != nil {
			render(w, http.StatusUnauthorized, id, err.Error())
			return
		}
		http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func render(w http.ResponseWriter, status int, id, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, struct{ ID, Error string }{id, message})
}

// testToken answers POST username and password with {"id_token": …} for the client, signed
// and shaped as one from the code flow: for tests that need a signed-in user's token without
// a browser (the library has no password grant). Test support only.
type testToken struct {
	storage *storage
	issuer  string
}

func (t *testToken) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	user, err := t.storage.authenticate(r.PostFormValue("username"), r.PostFormValue("password"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	request := directRequest{
		subject:  user.Username,
		clientID: t.storage.client.ID,
		scopes:   []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail},
		authTime: time.Now(),
	}
	token, err := op.CreateIDToken(r.Context(), t.issuer, request, t.storage.client.IDTokenLifetime(),
		"", "", t.storage, t.storage.client)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"id_token": token})
}
