//! Server-side apply: field ownership in `metadata.managedFields` (FieldsV1) and conflicts.
//!
//! Follows structured-merge-diff's updater: an apply merges the applied configuration into the
//! live object, makes the applier own exactly the fields it applied, removes fields it applied
//! before and no longer applies (unless another manager owns them), and conflicts when the merge
//! changes a field another manager owns. An update gives its manager the fields it added or
//! changed and takes them away from everybody else.
//!
//! What the caller (the server) does before calling: it resets the parts of the object a write
//! may not change — `status` for main-resource writes of resources with a status subresource,
//! everything but `status` (and metadata) for `/status` writes — so ownership is recorded only for
//! what the write may change. `metadata.managedFields` of the applied configuration is ignored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How a list at some path merges, taken from `x-kubernetes-list-type` / `x-kubernetes-list-map-keys`
/// of a CRD schema (or a built-in table for built-in kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Answers the list type at a path of field names (list items are not part of the path).
pub trait ListTypes {
    fn list_type(&self, path: &[&str]) -> ListType;
}

/// List types declared by a CRD version's `openAPIV3Schema`; lists without a declaration are
/// atomic, as the server treats them.
pub struct SchemaListTypes<'a>(pub &'a Value);

impl ListTypes for SchemaListTypes<'_> {
    fn list_type(&self, path: &[&str]) -> ListType {
        let mut node = self.0;
        for name in path {
            // Descend through list items to the next named field.
            while node.get("type").and_then(Value::as_str) == Some("array") {
                match node.get("items") {
                    Some(items) => node = items,
                    None => return ListType::Atomic,
                }
            }
            node = match node
                .get("properties")
                .and_then(|p| p.get(*name))
                .or_else(|| node.get("additionalProperties"))
            {
                Some(next) => next,
                None => return ListType::Atomic,
            };
        }
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                node.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }
}

/// List types of built-in kinds, from the same table strategic merge patch uses.
pub struct BuiltinListTypes;

impl ListTypes for BuiltinListTypes {
    fn list_type(&self, path: &[&str]) -> ListType {
        let Some((field, parent)) = path.split_last() else {
            return ListType::Atomic;
        };
        match crate::patch::builtin_list_strategy(parent, field) {
            crate::patch::ListStrategy::Replace => ListType::Atomic,
            crate::patch::ListStrategy::MergeScalars => ListType::Set,
            crate::patch::ListStrategy::MergeByKey(key) => ListType::Map(vec![key.to_string()]),
        }
    }
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// e.g. `.spec.replicas`
    pub field: String,
}

/// Context of one write.
pub struct ApplyContext<'a> {
    pub manager: &'a str,
    /// `None` for the main resource, `Some("status")` for the status subresource.
    pub subresource: Option<&'a str>,
    /// RFC 3339 time recorded in the managedFields entry.
    pub now: &'a str,
    /// apiVersion recorded in the managedFields entry.
    pub api_version: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Field sets
// ---------------------------------------------------------------------------------------------

/// A set of field paths as a tree keyed by FieldsV1 path elements (`f:name`, `k:{"type":"x"}`,
/// `v:"x"`). `member` says the node's own path is in the set (FieldsV1 `.`, or `{}` for a leaf).
#[derive(Debug, Clone, Default, PartialEq)]
struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((head, rest)) => self.children.entry(head.clone()).or_default().insert(rest),
        }
    }

    fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, v) in &other.children {
            self.children.entry(k.clone()).or_default().union(v);
        }
    }

    fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (k, v) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.subtract(v);
                if mine.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            if let Some(o) = other.children.get(k) {
                let child = v.intersection(o);
                if !child.is_empty() {
                    out.children.insert(k.clone(), child);
                }
            }
        }
        out
    }

    fn get(&self, path: &[String]) -> Option<&FieldSet> {
        path.iter().try_fold(self, |node, k| node.children.get(k))
    }

    /// Member paths, depth first.
    fn members(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_members(&mut Vec::new(), &mut out);
        out
    }

    fn collect_members(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, v) in &self.children {
            prefix.push(k.clone());
            v.collect_members(prefix, out);
            prefix.pop();
        }
    }

    /// The set with every field (`f:`) node a member, so that a field whose entries all stopped
    /// being applied goes as a whole (structured-merge-diff `EnsureNamedFieldsAreMembers`).
    fn with_named_fields_as_members(&self) -> FieldSet {
        let children = self
            .children
            .iter()
            .map(|(k, v)| {
                let mut child = v.with_named_fields_as_members();
                child.member |= k.starts_with("f:");
                (k.clone(), child)
            })
            .collect();
        FieldSet {
            member: self.member,
            children,
        }
    }

    fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, v) in &self.children {
            map.insert(k.clone(), v.to_fields_v1());
        }
        Value::Object(map)
    }

    fn from_fields_v1(v: &Value) -> FieldSet {
        let Some(map) = v.as_object() else {
            return FieldSet::default();
        };
        if map.is_empty() {
            return FieldSet {
                member: true,
                children: BTreeMap::new(),
            };
        }
        let mut set = FieldSet::default();
        for (k, child) in map {
            if k == "." {
                set.member = true;
            } else {
                set.children
                    .insert(k.clone(), FieldSet::from_fields_v1(child));
            }
        }
        set
    }
}

fn field_element(name: &str) -> String {
    format!("f:{name}")
}

/// Metadata fields the server maintains itself; they are never owned.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

fn strip_untracked(set: &mut FieldSet) {
    set.member = false;
    set.children.remove("f:apiVersion");
    set.children.remove("f:kind");
    if let Some(meta) = set.children.get_mut("f:metadata") {
        meta.member = false;
        for name in UNTRACKED_METADATA {
            meta.children.remove(&field_element(name));
        }
        if meta.is_empty() {
            set.children.remove("f:metadata");
        }
    }
}

/// The list type, with the metadata lists every kind shares.
fn list_type_at(names: &[&str], list_types: &dyn ListTypes) -> ListType {
    match names {
        ["metadata", "finalizers"] => ListType::Set,
        ["metadata", "ownerReferences"] => ListType::Map(vec!["uid".into()]),
        _ => list_types.list_type(names),
    }
}

/// Path element of a list item, or `None` when the item cannot be identified (the list is then
/// treated as atomic).
fn item_element(item: &Value, list_type: &ListType) -> Option<String> {
    match list_type {
        ListType::Atomic => None,
        ListType::Set => match item {
            Value::Object(_) | Value::Array(_) => None,
            scalar => Some(format!("v:{}", crate::go_format::json(scalar))),
        },
        ListType::Map(keys) => {
            let obj = item.as_object()?;
            if keys.is_empty() {
                return None;
            }
            let mut key = Map::new();
            for k in keys {
                key.insert(k.clone(), obj.get(k)?.clone());
            }
            Some(format!("k:{}", crate::go_format::json(&Value::Object(key))))
        }
    }
}

/// Items of a list by path element, or `None` if any item cannot be identified.
fn index_items<'v>(list: &'v [Value], list_type: &ListType) -> Option<Vec<(String, &'v Value)>> {
    list.iter()
        .map(|item| item_element(item, list_type).map(|e| (e, item)))
        .collect()
}

/// The fields a value sets (structured-merge-diff `ToFieldSet`): leaves, atomic lists, and list
/// items with their fields; maps only through their entries.
fn fields_of(v: &Value, names: &mut Vec<String>, list_types: &dyn ListTypes) -> FieldSet {
    let mut node = FieldSet::default();
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                names.push(k.clone());
                let child_set = fields_of(child, names, list_types);
                names.pop();
                if !child_set.is_empty() {
                    node.children.insert(field_element(k), child_set);
                }
            }
        }
        Value::Array(list) => {
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let list_type = list_type_at(&name_refs, list_types);
            match index_items(list, &list_type) {
                Some(items) => {
                    for (element, item) in items {
                        let mut item_set = if item.is_object() {
                            fields_of(item, names, list_types)
                        } else {
                            FieldSet::default()
                        };
                        item_set.member = true;
                        node.children.insert(element, item_set);
                    }
                }
                None => node.member = true,
            }
        }
        _ => node.member = true,
    }
    node
}

fn tracked_fields(v: &Value, list_types: &dyn ListTypes) -> FieldSet {
    let mut set = fields_of(v, &mut Vec::new(), list_types);
    strip_untracked(&mut set);
    set
}

/// Every node of a value as a member: what a whole new (or removed) subtree contributes.
fn all_nodes(v: &Value, names: &mut Vec<String>, list_types: &dyn ListTypes) -> FieldSet {
    let mut node = fields_of(v, names, list_types);
    node.member = true;
    if let Value::Object(map) = v {
        for (k, child) in map {
            names.push(k.clone());
            let child_set = all_nodes(child, names, list_types);
            names.pop();
            node.children.insert(field_element(k), child_set);
        }
    }
    node
}

#[derive(Default)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

/// Compares two versions of an object field by field.
fn compare(old: &Value, new: &Value, list_types: &dyn ListTypes) -> Comparison {
    let mut cmp = Comparison::default();
    compare_node(
        old,
        new,
        &mut Vec::new(),
        &mut Vec::new(),
        list_types,
        &mut cmp,
    );
    strip_untracked(&mut cmp.added);
    strip_untracked(&mut cmp.modified);
    strip_untracked(&mut cmp.removed);
    cmp
}

fn compare_node(
    old: &Value,
    new: &Value,
    names: &mut Vec<String>,
    path: &mut Vec<String>,
    list_types: &dyn ListTypes,
    cmp: &mut Comparison,
) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, nv) in n {
                names.push(k.clone());
                path.push(field_element(k));
                match o.get(k) {
                    Some(ov) => compare_node(ov, nv, names, path, list_types, cmp),
                    None => add_subtree(&mut cmp.added, path, nv, names, list_types),
                }
                path.pop();
                names.pop();
            }
            for (k, ov) in o.iter().filter(|(k, _)| !n.contains_key(*k)) {
                names.push(k.clone());
                path.push(field_element(k));
                add_subtree(&mut cmp.removed, path, ov, names, list_types);
                path.pop();
                names.pop();
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let list_type = list_type_at(&name_refs, list_types);
            match (index_items(o, &list_type), index_items(n, &list_type)) {
                (Some(old_items), Some(new_items)) => {
                    for (element, nv) in &new_items {
                        path.push(element.clone());
                        match old_items.iter().find(|(e, _)| e == element) {
                            Some((_, ov)) => compare_node(ov, nv, names, path, list_types, cmp),
                            None => add_subtree(&mut cmp.added, path, nv, names, list_types),
                        }
                        path.pop();
                    }
                    for (element, ov) in old_items
                        .iter()
                        .filter(|(e, _)| !new_items.iter().any(|(n, _)| n == e))
                    {
                        path.push(element.clone());
                        add_subtree(&mut cmp.removed, path, ov, names, list_types);
                        path.pop();
                    }
                }
                _ if o != n => cmp.modified.insert(path),
                _ => {}
            }
        }
        _ if old != new => cmp.modified.insert(path),
        _ => {}
    }
}

/// Adds every node of `v` at `path` to `set`.
fn add_subtree(
    set: &mut FieldSet,
    path: &[String],
    v: &Value,
    names: &mut Vec<String>,
    list_types: &dyn ListTypes,
) {
    let nodes = all_nodes(v, names, list_types);
    let node = path
        .iter()
        .fold(set, |node, k| node.children.entry(k.clone()).or_default());
    node.union(&nodes);
}

/// `.spec.containers[name="app"].image` — the notation of the server's conflict messages.
fn path_string(path: &[String]) -> String {
    path.iter()
        .map(|element| {
            if let Some(name) = element.strip_prefix("f:") {
                format!(".{name}")
            } else if let Some(value) = element.strip_prefix("v:") {
                format!("[={value}]")
            } else if let Some(key) = element.strip_prefix("k:") {
                let fields = serde_json::from_str::<Map<String, Value>>(key).unwrap_or_default();
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", crate::go_format::json(v)))
                    .collect();
                format!("[{}]", parts.join(","))
            } else {
                format!("[{element}]")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// managedFields entries
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Manager {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Manager {
    /// Entries are identified by manager, operation and subresource, and for updates also by
    /// apiVersion (an applier keeps one entry across versions).
    fn same_identity(&self, other: &Manager) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    fn decode(v: &Value) -> Option<Manager> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Manager {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation")?,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            subresource: s("subresource").filter(|s| !s.is_empty()),
            fields: FieldSet::from_fields_v1(v.get("fieldsV1").unwrap_or(&Value::Null)),
        })
    }

    fn encode(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), Value::from(self.manager.as_str()));
        entry.insert("operation".into(), Value::from(self.operation.as_str()));
        entry.insert("apiVersion".into(), Value::from(self.api_version.as_str()));
        if let Some(time) = &self.time {
            entry.insert("time".into(), Value::from(time.as_str()));
        }
        entry.insert("fieldsType".into(), Value::from("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(sub) = &self.subresource {
            entry.insert("subresource".into(), Value::from(sub.as_str()));
        }
        Value::Object(entry)
    }
}

fn decode_managers(object: Option<&Value>) -> Vec<Manager> {
    object
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Manager::decode).collect())
        .unwrap_or_default()
}

/// Writes the entries sorted as the server sorts them: appliers first, then by time and manager.
fn write_managers(object: &mut Value, mut managers: Vec<Manager>) {
    managers.retain(|m| !m.fields.is_empty());
    managers.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    if managers.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(managers.iter().map(Manager::encode).collect()),
        );
    }
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

fn this_manager(ctx: &ApplyContext<'_>, operation: &str, fields: FieldSet) -> Manager {
    Manager {
        manager: ctx.manager.to_string(),
        operation: operation.to_string(),
        api_version: ctx.api_version.to_string(),
        time: Some(ctx.now.to_string()),
        subresource: ctx.subresource.map(str::to_string),
        fields,
    }
}

// ---------------------------------------------------------------------------------------------
// Merge and removal
// ---------------------------------------------------------------------------------------------

/// Merges an applied configuration into the live object: maps by key, associative lists by
/// item, atomic lists and scalars replaced. Live-only list items keep their place; new ones are
/// appended in the configuration's order.
fn merge(
    live: &Value,
    config: &Value,
    names: &mut Vec<String>,
    list_types: &dyn ListTypes,
) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, cv) in c {
                names.push(k.clone());
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, cv, names, list_types),
                    None => cv.clone(),
                };
                names.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let list_type = list_type_at(&name_refs, list_types);
            let (Some(live_items), Some(config_items)) =
                (index_items(l, &list_type), index_items(c, &list_type))
            else {
                return config.clone();
            };
            let mut out: Vec<Value> = live_items
                .iter()
                .map(
                    |(e, lv)| match config_items.iter().find(|(ce, _)| ce == e) {
                        Some((_, cv)) => merge(lv, cv, names, list_types),
                        None => (*lv).clone(),
                    },
                )
                .collect();
            for (e, cv) in &config_items {
                if !live_items.iter().any(|(le, _)| le == e) {
                    out.push((*cv).clone());
                }
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// Removes the field or list item at `path` (FieldsV1 elements) from `v`.
fn remove_path(
    v: &mut Value,
    path: &[String],
    names: &mut Vec<String>,
    list_types: &dyn ListTypes,
) {
    let Some((head, rest)) = path.split_first() else {
        return;
    };
    match v {
        Value::Object(map) => {
            let Some(name) = head.strip_prefix("f:") else {
                return;
            };
            if rest.is_empty() {
                map.remove(name);
            } else if let Some(child) = map.get_mut(name) {
                names.push(name.to_string());
                remove_path(child, rest, names, list_types);
                names.pop();
            }
        }
        Value::Array(list) => {
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let list_type = list_type_at(&name_refs, list_types);
            let Some(index) = list
                .iter()
                .position(|item| item_element(item, &list_type).as_ref() == Some(head))
            else {
                return;
            };
            if rest.is_empty() {
                list.remove(index);
            } else {
                remove_path(&mut list[index], rest, names, list_types);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Apply and update
// ---------------------------------------------------------------------------------------------

/// Applies `applied` (a partial object) to `live` (None on create) for `ctx.manager`.
/// Fields this manager owned before but omits now are removed unless another manager owns them.
/// Returns the merged object with updated `metadata.managedFields`, or the conflicts when
/// `force` is false and another manager owns a field with a different value.
///
/// A live object without managedFields is first attributed to a `before-first-apply` updater,
/// as the server does, so that its fields can conflict.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    ctx: &ApplyContext<'_>,
    force: bool,
    list_types: &dyn ListTypes,
) -> Result<Value, Vec<Conflict>> {
    let live_obj = live
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let config = without_managed_fields(applied);
    let mut managers = decode_managers(live);
    if live.is_some() && managers.is_empty() {
        let fields = tracked_fields(&live_obj, list_types);
        managers.push(Manager {
            manager: "before-first-apply".into(),
            operation: "Update".into(),
            api_version: ctx.api_version.into(),
            time: Some(ctx.now.into()),
            subresource: None,
            fields,
        });
    }

    let mut merged = merge(&live_obj, &config, &mut Vec::new(), list_types);
    let me = this_manager(ctx, "Apply", tracked_fields(&config, list_types));
    let previous = managers
        .iter()
        .position(|m| m.same_identity(&me))
        .map(|i| managers.remove(i));

    // Fields applied last time and not this time go, unless someone else still manages them.
    if let Some(previous) = &previous {
        let mut dropped = previous.fields.with_named_fields_as_members();
        dropped.subtract(&me.fields.with_named_fields_as_members());
        let mut others = FieldSet::default();
        for m in &managers {
            others.union(&m.fields);
        }
        for path in dropped.members() {
            // The object's own identity stays even when no applied field is left in metadata.
            let identity = path.len() == 1
                && matches!(path[0].as_str(), "f:metadata" | "f:apiVersion" | "f:kind");
            if !identity && others.get(&path).is_none() && me.fields.get(&path).is_none() {
                remove_path(&mut merged, &path, &mut Vec::new(), list_types);
            }
        }
    }

    let cmp = compare(&live_obj, &merged, list_types);
    let mut changed = cmp.added.clone();
    changed.union(&cmp.modified);
    let mut conflicts = Vec::new();
    for m in &mut managers {
        let overlap = m.fields.intersection(&changed);
        for path in overlap.members() {
            conflicts.push(Conflict {
                manager: m.manager.clone(),
                field: path_string(&path),
            });
        }
        m.fields.subtract(&overlap);
        m.fields.subtract(&cmp.removed);
    }
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    managers.push(me);
    write_managers(&mut merged, managers);
    Ok(merged)
}

/// Records an ordinary write (create, update, any non-apply patch) in `new`'s managedFields:
/// `ctx.manager` takes the fields it changed (operation `Update`); other managers lose them.
///
/// The entries are taken from `new` when it carries any (a client may send them), else from `old`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    ctx: &ApplyContext<'_>,
    list_types: &dyn ListTypes,
) {
    let mut managers = decode_managers(Some(new));
    if managers.is_empty() {
        managers = decode_managers(old);
    }
    let old_obj = old
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let new_obj = without_managed_fields(new);
    let cmp = compare(&old_obj, &new_obj, list_types);
    let mut changed = cmp.added.clone();
    changed.union(&cmp.modified);

    let mut me = this_manager(ctx, "Update", FieldSet::default());
    if let Some(i) = managers.iter().position(|m| m.same_identity(&me)) {
        me.fields = managers.remove(i).fields;
    }
    for m in &mut managers {
        m.fields.subtract(&changed);
        m.fields.subtract(&cmp.removed);
    }
    me.fields.union(&changed);
    me.fields.subtract(&cmp.removed);
    managers.push(me);
    write_managers(new, managers);
}

#[cfg(test)]
mod tests;
