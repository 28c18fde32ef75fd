//! HTTP entry point: authentication, request parsing into the API server's request info,
//! authorization, and dispatch to the verb handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use local_apimachinery::rbac::{Attributes, UserInfo};
use serde_json::{Value, json};

use crate::app::App;
use crate::list::{self, ListQuery};
use crate::managed::manager_name;
use crate::objects::{self, DeleteOptions, Deleted, PatchKind, WriteOpts};
use crate::registry::{ResourceInfo, Special};
use crate::status::{ApiError, ApiResult};
use crate::table::{self, Output};
use crate::{auth, discovery, openapi, protobuf, watch};

/// etcd's default request size limit, which bounds object size on a real cluster.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The version this server reports.
const GIT_VERSION: &str = "v1.33.0";

type Query = Vec<(String, String)>;

fn q<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn is_true(query: &Query, key: &str) -> bool {
    matches!(q(query, key), Some("true" | "1"))
}

pub fn json_response(code: u16, body: &Value) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        body.to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn text(body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            r.headers_mut().append("Warning", v);
        }
    }
    r
}

pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query: Query = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let path = parts.uri.path().to_string();
    match route(&app, &parts.method, &path, &query, &parts.headers, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large(MAX_BODY))
}

fn is_public(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

async fn route(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let header_str = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let authorization = header_str(header::AUTHORIZATION);
    let user = match app.auth.authenticate_header(authorization) {
        Some(u) => u.clone(),
        // Health and version are public; a presented but invalid token is still rejected.
        None if authorization.is_none() && is_public(path) && method == Method::GET => {
            return Ok(public(path));
        }
        None => return Err(ApiError::unauthorized()),
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resource_path = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => Some(("", "v1", rest)),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => Some((*g, *v, rest)),
        _ => None,
    };
    if let Some((group, version, rest)) = resource_path {
        return resource_request(
            app, &user, method, group, version, rest, query, headers, body,
        )
        .await;
    }
    let verb = method.as_str().to_lowercase();
    auth::authorize(
        app,
        &user,
        &Attributes {
            verb,
            non_resource_path: Some(path.to_string()),
            ..Default::default()
        },
    )?;
    if method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let registry = &app.registry;
    let doc = match segs.as_slice() {
        [] => {
            json!({ "paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"] })
        }
        [p, ..] if is_public(&format!("/{p}")) => return Ok(public(path)),
        ["api"] => discovery::api_versions(&app.address),
        ["api", "v1"] => {
            discovery::resource_list(registry, "", "v1").ok_or_else(ApiError::unknown_resource)?
        }
        ["apis"] => discovery::api_group_list(registry),
        ["apis", g] => discovery::api_group(registry, g).ok_or_else(ApiError::unknown_resource)?,
        ["apis", g, v] => {
            discovery::resource_list(registry, g, v).ok_or_else(ApiError::unknown_resource)?
        }
        ["openapi", "v2"] if !accepts_json(headers) => return Ok(openapi::v2_protobuf()),
        ["openapi", "v2"] => openapi::v2(registry),
        ["openapi", "v3"] => openapi::v3_index(registry),
        ["openapi", "v3", "apis", g, v] => {
            openapi::v3_group_version(registry, g, v).ok_or_else(ApiError::unknown_resource)?
        }
        _ => return Err(ApiError::unknown_resource()),
    };
    Ok(json_response(200, &doc))
}

/// The object a list or watch names with a `metadata.name` field selector: the API server
/// authorizes such a request as one for that name, so RBAC `resourceNames` can allow it.
fn selected_name(selector: Option<&str>) -> Option<String> {
    selector?.split(',').find_map(|term| {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(field, _)| !field.ends_with('!'))?;
        let valid =
            !value.is_empty() && value != "." && value != ".." && !value.contains(['/', '%']);
        (field.trim() == "metadata.name" && valid).then(|| value.trim().to_string())
    })
}

/// Whether an Accept header admits JSON (absent means anything).
fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| {
            a.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or("").trim();
                t == "application/json" || t == "*/*" || t == "application/*"
            })
        })
}

fn public(path: &str) -> Response {
    if path.starts_with("/version") {
        return json_response(
            200,
            &json!({
                "major": "1", "minor": "33", "gitVersion": GIT_VERSION, "gitCommit": "", "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
            }),
        );
    }
    text("ok")
}

/// The parsed resource part of a path, as the API server's RequestInfo has it.
struct Target {
    info: Arc<ResourceInfo>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_target(app: &App, group: &str, version: &str, rest: &[&str]) -> ApiResult<(Target, bool)> {
    let (watch_path, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..]
            if *resource != "status" && *resource != "finalize" =>
        {
            (Some(ns.to_string()), [&[*resource][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::unknown_resource()),
    };
    let info = app
        .registry
        .find(group, version, resource)
        .ok_or_else(ApiError::unknown_resource)?;
    if namespace.is_some() && !info.namespaced {
        return Err(ApiError::unknown_resource());
    }
    match subresource.as_deref() {
        None => {}
        Some("status") if info.status_subresource => {}
        Some("finalize") if info.special == Special::Namespace => {}
        Some(_) => return Err(ApiError::unknown_resource()),
    }
    Ok((
        Target {
            info,
            namespace,
            name,
            subresource,
        },
        watch_path,
    ))
}

fn verb_of(method: &Method, t: &Target, watch: bool) -> ApiResult<&'static str> {
    let named = t.name.is_some();
    let verb = match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) if t.subresource.is_none() => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed()),
    };
    if t.subresource.as_deref() == Some("finalize") && verb != "update" {
        return Err(ApiError::method_not_allowed());
    }
    if t.subresource.as_deref() == Some("status") && !matches!(verb, "get" | "update" | "patch") {
        return Err(ApiError::method_not_allowed());
    }
    if !t.info.verbs().contains(&verb) {
        return Err(ApiError::method_not_allowed());
    }
    // A namespaced kind has no per-object routes outside a namespace.
    if t.info.namespaced && t.namespace.is_none() && !matches!(verb, "list" | "watch") {
        return Err(if named {
            ApiError::unknown_resource()
        } else {
            ApiError::method_not_allowed()
        });
    }
    Ok(verb)
}

fn parse_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = content_type.split(';').next().unwrap_or("").trim();
    match base {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        protobuf::CONTENT_TYPE => protobuf::decode(body),
        "application/yaml" => serde_yaml::from_slice::<serde_yaml::Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
            .and_then(|v| {
                serde_json::to_value(v).map_err(|e| ApiError::bad_request(e.to_string()))
            }),
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml"],
        )),
    }
}

/// DeleteOptions from a delete request's body, if it has one.
fn parse_delete_options(headers: &HeaderMap, body: &[u8]) -> ApiResult<Option<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_object(headers, body).map(Some)
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    app: &Arc<App>,
    user: &UserInfo,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (t, watch_path) = parse_target(app, group, version, rest)?;
    let watch = watch_path || is_true(query, "watch");
    let verb = verb_of(method, &t, watch)?;
    app.stats.count(verb);
    let info = t.info.clone();
    let namespace = t.namespace.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let attrs = Attributes {
        verb: verb.to_string(),
        api_group: info.group.clone(),
        resource: info.plural.clone(),
        subresource: t.subresource.clone().unwrap_or_default(),
        // A namespace's own name is its namespace attribute.
        namespace: if info.special == Special::Namespace {
            name.clone()
        } else {
            namespace.clone()
        },
        name: if name.is_empty() && matches!(verb, "list" | "watch") {
            selected_name(q(query, "fieldSelector")).unwrap_or_default()
        } else {
            name.clone()
        },
        non_resource_path: None,
    };
    auth::authorize(app, user, &attrs)?;
    let header_str = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let output = Output::negotiate(header_str("accept"));
    let opts = WriteOpts {
        manager: manager_name(q(query, "fieldManager"), header_str("user-agent")),
        dry_run: q(query, "dryRun") == Some("All"),
        strict: q(query, "fieldValidation") == Some("Strict"),
    };
    let sub = t.subresource.as_deref().filter(|s| *s == "status");
    match verb {
        "get" => {
            let obj = objects::get(app, &info, &namespace, &name)?;
            Ok(json_response(200, &render_one(&info, output, obj)))
        }
        "list" => {
            let lq = ListQuery::parse(&info, query)?;
            let result = list::list(app, &info, t.namespace.as_deref(), &lq)?;
            Ok(json_response(
                200,
                &render_list(&info, output, list::list_document(&info, result)),
            ))
        }
        "watch" => {
            let req = watch::WatchRequest {
                namespace: t.namespace.clone(),
                query: ListQuery::parse(&info, query)?,
                send_initial_events: q(query, "sendInitialEvents").map(|v| v == "true"),
                allow_bookmarks: is_true(query, "allowWatchBookmarks"),
                timeout: q(query, "timeoutSeconds")
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(Duration::from_secs),
                output,
            };
            let stream = watch::start(app.clone(), info, req)?;
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        "create" => {
            let obj = parse_object(headers, &read_body(body).await?)?;
            if info.is_review() {
                return Ok(json_response(
                    201,
                    &auth::review(app, &info, &namespace, user, obj)?,
                ));
            }
            let written = objects::create(app, &info, &namespace, obj, &opts)?;
            Ok(json_response(201, &written))
        }
        "update" => {
            let obj = parse_object(headers, &read_body(body).await?)?;
            let sub = t.subresource.as_deref();
            let written = if sub == Some("finalize") {
                objects::finalize_namespace(app, &info, &name, obj, &opts)?
            } else {
                objects::update(app, &info, &namespace, &name, sub, obj, &opts)?
            };
            Ok(json_response(200, &written))
        }
        "patch" => {
            let content_type = header_str("content-type").unwrap_or("");
            let kind = PatchKind::from_content_type(&info, content_type)?;
            // An apply that creates the object is also a create, as on a real server.
            if kind == PatchKind::Apply
                && sub.is_none()
                && objects::get(app, &info, &namespace, &name).is_err()
            {
                let create = Attributes {
                    verb: "create".into(),
                    ..attrs.clone()
                };
                auth::authorize(app, user, &create)?;
            }
            let patch = objects::parse_patch(kind, &read_body(body).await?)?;
            let force = is_true(query, "force");
            let given = q(query, "fieldManager").is_some_and(|m| !m.is_empty());
            let (code, obj) = objects::patch(
                app, &info, &namespace, &name, sub, kind, patch, force, &opts, given,
            )?;
            Ok(json_response(code, &obj))
        }
        "delete" => {
            let body_opts = parse_delete_options(headers, &read_body(body).await?)?;
            let dopts = DeleteOptions::parse(body_opts.as_ref(), query)?;
            let warn_orphan = info.orphan_by_default
                && dopts.propagation.is_none()
                && dopts.orphan_dependents.is_none();
            let resp = match objects::delete(app, &info, &namespace, &name, &dopts)? {
                Deleted::Pending(obj) => json_response(
                    if dopts.orphan_dependents == Some(false) {
                        202
                    } else {
                        200
                    },
                    &obj,
                ),
                Deleted::Gone(obj) if info.return_deleted_object => json_response(200, &obj),
                Deleted::Gone(obj) => json_response(200, &objects::deleted_status(&info, &obj)),
            };
            let warnings = if warn_orphan {
                vec!["child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning".to_string()]
            } else {
                vec![]
            };
            Ok(with_warnings(resp, &warnings))
        }
        "deletecollection" => {
            let body_opts = parse_delete_options(headers, &read_body(body).await?)?;
            let dopts = DeleteOptions::parse(body_opts.as_ref(), query)?;
            let lq = ListQuery::parse(&info, query)?;
            let everything = ListQuery {
                label_selector: lq.label_selector,
                field_selector: lq.field_selector,
                ..Default::default()
            };
            let matching = list::list(app, &info, t.namespace.as_deref(), &everything)?;
            let mut items = vec![];
            for obj in &matching.items {
                let ns = obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let n = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match objects::delete(app, &info, ns, n, &dopts) {
                    Ok(Deleted::Pending(o) | Deleted::Gone(o)) => items.push(o),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let rv = app.store.current_rv();
            Ok(json_response(
                200,
                &json!({ "kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": { "resourceVersion": rv.to_string() }, "items": items }),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn render_one(info: &ResourceInfo, output: Output, obj: Value) -> Value {
    match output {
        Output::Object => obj,
        Output::PartialMetadata => table::partial_metadata(&obj),
        Output::Table => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            table::table(
                info,
                std::slice::from_ref(&obj),
                json!({ "resourceVersion": rv }),
                true,
            )
        }
    }
}

fn render_list(info: &ResourceInfo, output: Output, list: Value) -> Value {
    match output {
        Output::Object => list,
        Output::PartialMetadata => table::partial_metadata_list(&list),
        Output::Table => {
            let items = list["items"].as_array().cloned().unwrap_or_default();
            table::table(info, &items, list["metadata"].clone(), true)
        }
    }
}
