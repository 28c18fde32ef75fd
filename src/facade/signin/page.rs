//! The sign-in page's HTML: plain markup, one stylesheet and one small script, all served by
//! the operator (the Content-Security-Policy allows nothing from elsewhere).

use std::fmt::Write as _;

use jiff::Timestamp;

/// One of the signed-in user's leases, as the page lists it.
pub struct LeaseRow {
    pub id: String,
    pub status: String,
    pub account_id: String,
    pub expires_on: Option<Timestamp>,
    pub budget: String,
    pub spend: String,
    /// Whether the console can be opened (the lease is Active).
    pub active: bool,
}

/// What the signed-out page offers.
pub struct SignedOut<'a> {
    pub base: &'a str,
    pub csrf: &'a str,
    /// The OIDC provider's name on its button, when sign-in through it is configured.
    pub oidc_provider: Option<&'a str>,
    /// Why the user is here again (a refused or expired sign-in).
    pub notice: Option<&'a str>,
}

/// What the signed-in page shows.
pub struct SignedIn<'a> {
    pub base: &'a str,
    pub csrf: &'a str,
    pub user: &'a str,
    pub token: &'a str,
    pub expires_at: Timestamp,
    pub leases: &'a [LeaseRow],
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(base: &str, title: &str, body: &str) -> String {
    let base = escape(base);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · DCE</title>\
         <link rel=\"stylesheet\" href=\"{base}/auth/page.css\">\
         <script src=\"{base}/auth/page.js\" defer></script></head>\
         <body><main><h1>DCE sign-in</h1>{body}</main></body></html>\n",
        title = escape(title)
    )
}

pub fn signed_out(page: &SignedOut<'_>) -> String {
    let base = escape(page.base);
    let csrf = escape(page.csrf);
    let mut body = String::new();
    if let Some(notice) = page.notice {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"alert\">{}</p>",
            escape(notice)
        );
    }
    if let Some(provider) = page.oidc_provider {
        let _ = write!(
            body,
            "<section><h2>Sign in with your identity provider</h2>\
             <p><a class=\"button\" id=\"oidc-sign-in\" href=\"{base}/auth/oidc/start\">Sign in with {}</a></p></section>",
            escape(provider)
        );
    }
    let _ = write!(
        body,
        "<section><h2>Sign in with a Kubernetes token</h2>\
         <p>Paste a token the cluster accepts, e.g. from <code>kubectl create token</code>.</p>\
         <form method=\"post\" action=\"{base}/auth/token\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"token\">Token</label>\
         <textarea id=\"token\" name=\"token\" rows=\"4\" autocomplete=\"off\" spellcheck=\"false\" required></textarea>\
         <button type=\"submit\" id=\"token-sign-in\">Sign in</button></form></section>"
    );
    document(page.base, "Sign in", &body)
}

pub fn signed_in(page: &SignedIn<'_>, now: Timestamp) -> String {
    let base = escape(page.base);
    let csrf = escape(page.csrf);
    let minutes = page.expires_at.duration_since(now).as_secs().max(0) / 60;
    let mut body = format!(
        "<p>Signed in as <strong id=\"user\">{user}</strong>.</p>\
         <section><h2>Your API token</h2>\
         <p>Paste it where <code>dce auth</code> asks: <code>Enter API Token:</code></p>\
         <textarea id=\"dce-token\" readonly rows=\"5\">{token}</textarea>\
         <p><button type=\"button\" id=\"copy-token\" data-copy=\"dce-token\">Copy</button> \
         <span id=\"token-expiry\">Expires at <time datetime=\"{at}\">{at}</time> (in {minutes} min).</span></p></section>",
        user = escape(page.user),
        token = escape(page.token),
        at = page.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    );
    body.push_str("<section><h2>Your leases</h2>");
    if page.leases.is_empty() {
        body.push_str("<p id=\"no-leases\">You have no leases.</p>");
    } else {
        body.push_str(
            "<table id=\"leases\"><thead><tr><th>Lease</th><th>Status</th><th>Account</th>\
             <th>Expires</th><th>Budget</th><th>Spend</th><th></th></tr></thead><tbody>",
        );
        for lease in page.leases {
            let console = if lease.active {
                format!(
                    "<form method=\"post\" action=\"{base}/auth/console\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <input type=\"hidden\" name=\"lease\" value=\"{id}\">\
                     <button type=\"submit\">Open the AWS console</button></form>",
                    id = escape(&lease.id)
                )
            } else {
                String::new()
            };
            let _ = write!(
                body,
                "<tr data-lease=\"{id}\"><td>{id}</td><td>{status}</td><td>{account}</td>\
                 <td>{expires}</td><td>{budget}</td><td>{spend}</td><td>{console}</td></tr>",
                id = escape(&lease.id),
                status = escape(&lease.status),
                account = escape(&lease.account_id),
                expires = lease
                    .expires_on
                    .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default(),
                budget = escape(&lease.budget),
                spend = escape(&lease.spend),
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "</section><form method=\"post\" action=\"{base}/auth/sign-out\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"sign-out\">Sign out (revokes the token)</button></form>"
    );
    document(page.base, "Signed in", &body)
}

/// The stylesheet and script, served beside the page.
pub const STYLESHEET: &str = include_str!("assets/page.css");
pub const SCRIPT: &str = include_str!("assets/page.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_outside_is_escaped() {
        let html = signed_out(&SignedOut {
            base: "/api",
            csrf: "c\"srf",
            oidc_provider: Some("<Corp>"),
            notice: Some("bad <script>"),
        });
        assert!(html.contains("Sign in with &lt;Corp&gt;"));
        assert!(html.contains("bad &lt;script&gt;"));
        assert!(html.contains("value=\"c&quot;srf\""));
        assert!(html.contains("href=\"/api/auth/page.css\""));
    }

    #[test]
    fn the_signed_in_page_shows_the_token_its_expiry_and_leases() {
        let now: Timestamp = "2026-12-08T10:00:00Z".parse().unwrap();
        let leases = [LeaseRow {
            id: "uid-1".into(),
            status: "Active".into(),
            account_id: "123456789012".into(),
            expires_on: Some(now),
            budget: "100 USD".into(),
            spend: "3.5 USD".into(),
            active: true,
        }];
        let html = signed_in(
            &SignedIn {
                base: "",
                csrf: "c",
                user: "alice",
                token: "dG9rZW4=",
                expires_at: now + jiff::SignedDuration::from_mins(60),
                leases: &leases,
            },
            now,
        );
        assert!(
            html.contains("<textarea id=\"dce-token\" readonly rows=\"5\">dG9rZW4=</textarea>")
        );
        assert!(html.contains("(in 60 min)"));
        assert!(html.contains("action=\"/auth/console\""));
        assert!(html.contains("<td>123456789012</td>"));
    }
}
