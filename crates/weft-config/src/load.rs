//! Loading resources from files and directories.
//!
//! Multi-document YAML and JSON, directories walked recursively (hidden
//! entries skipped, files in name order), Kubernetes `List`s unwrapped.
//! Every document is loaded on its own: a broken one is reported with its
//! file and line and the others still load. A resource with an error is
//! *rejected* — it is not in [`Loaded::resources`] — but its key is kept in
//! [`Loaded::rejected`] so the config store can keep its last good version.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::de::{DeError, UnknownField, from_node};
use crate::diag::{Code, Diagnostic, Severity};
use crate::mesh::MeshConfig;
use crate::path::FieldPath;
use crate::resource::{Kind, ObjectMeta, Resource, ResourceKey, Source, Spec};
use crate::validate::{Validate, Validator, is_dns1123_label, is_dns1123_subdomain};
use crate::yaml::{Node, Value, parse_stream};

mod cache;
pub use cache::{FileCache, load_paths_cached};

/// How to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Namespace for resources that name none (`--namespace`; default
    /// `default`).
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_namespace: "default".to_string(),
        }
    }
}

/// A document that named a resource but was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Which resource it would have been.
    pub key: ResourceKey,
    /// Where.
    pub source: Source,
}

/// What loading found.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Valid resources, in file order.
    pub resources: Vec<Resource>,
    /// Documents naming a resource that were rejected for errors.
    pub rejected: Vec<Rejected>,
    /// Every problem found (errors, warnings, infos).
    pub diagnostics: Vec<Diagnostic>,
    /// Mesh-wide config, from a ConfigMap named `istio` (key `mesh`).
    pub mesh: Option<(MeshConfig, Source)>,
    /// Whether a mesh config was given but rejected for errors.
    pub mesh_rejected: bool,
    /// The files read.
    pub files: Vec<PathBuf>,
}

impl Loaded {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    fn extend(&mut self, other: Loaded) {
        self.resources.extend(other.resources);
        self.rejected.extend(other.rejected);
        self.diagnostics.extend(other.diagnostics);
        if other.mesh.is_some() {
            self.mesh = other.mesh;
        }
        self.mesh_rejected |= other.mesh_rejected;
        self.files.extend(other.files);
    }
}

/// Whether a file name is one we read.
pub fn is_config_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

/// Lists the config files under `path` (itself if a file), sorted.
pub fn config_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path();
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if is_config_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every file under every path, then reports duplicates across them.
/// A path of `-` reads standard input (shown as `<stdin>`), so
/// `kubectl get vs -o yaml | weft analyze -` works.
pub fn load_paths(paths: &[PathBuf], opts: &LoadOptions) -> Loaded {
    load_paths_with(paths, opts, |file| load_file(file, opts))
}

/// [`load_paths`] with `load` for each config file found (standard input
/// is always read afresh).
pub(crate) fn load_paths_with(
    paths: &[PathBuf],
    opts: &LoadOptions,
    mut load: impl FnMut(&Path) -> Loaded,
) -> Loaded {
    let mut all = Loaded::default();
    for path in paths {
        if path.as_os_str() == "-" {
            all.extend(load_reader(
                std::io::stdin().lock(),
                Path::new("<stdin>"),
                opts,
            ));
            continue;
        }
        match config_files(path) {
            Ok(files) => {
                for file in files {
                    all.extend(load(&file));
                }
            }
            Err(e) => all.extend(unreadable(path, format!("cannot read: {e}"))),
        }
    }
    reject_duplicates(&mut all);
    all
}

/// Loads everything `reader` yields, reporting it as from `file`.
pub fn load_reader(mut reader: impl std::io::Read, file: &Path, opts: &LoadOptions) -> Loaded {
    let mut bytes = Vec::new();
    match reader.read_to_end(&mut bytes) {
        Ok(_) => load_bytes(bytes, file, opts),
        Err(e) => unreadable(file, format!("cannot read: {e}")),
    }
}

/// A [`Loaded`] holding only an unreadable-file error.
/// (An unreadable file is not counted among the files read.)
fn unreadable(file: &Path, message: String) -> Loaded {
    let mut d = Diagnostic::new(Code::UnreadableFile, message);
    d.file = Some(file.to_path_buf());
    Loaded {
        diagnostics: vec![d],
        ..Loaded::default()
    }
}

fn load_bytes(bytes: Vec<u8>, file: &Path, opts: &LoadOptions) -> Loaded {
    match String::from_utf8(bytes) {
        Ok(text) => load_str(&text, file, opts),
        Err(e) => unreadable(file, format!("file is not UTF-8 text: {e}")),
    }
}

/// Loads one file.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Loaded {
    match std::fs::read(path) {
        Ok(bytes) => load_bytes(bytes, path, opts),
        Err(e) => unreadable(path, format!("cannot read: {e}")),
    }
}

/// Loads the documents of `text`, reporting them as from `file`.
pub fn load_str(text: &str, file: &Path, opts: &LoadOptions) -> Loaded {
    let mut out = Loaded {
        files: vec![file.to_path_buf()],
        ..Loaded::default()
    };
    for doc in parse_stream(text) {
        match doc.result {
            Ok(None) => {}
            Ok(Some(node)) => load_object(Arc::new(node), file, opts, &mut out),
            Err(e) => {
                let mut d = Diagnostic::new(
                    Code::SyntaxError,
                    format!("YAML syntax error: {}", e.message),
                );
                d.file = Some(file.to_path_buf());
                d.line = Some(e.pos.line);
                out.diagnostics.push(d);
            }
        }
    }
    out
}

/// Kubernetes kinds that are not mesh config: skipped with an info.
const KUBERNETES_KINDS: &[&str] = &[
    "Namespace",
    "Service",
    "ServiceAccount",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Job",
    "CronJob",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "EndpointSlice",
    "Ingress",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
];

fn diag_at(code: Code, msg: impl Into<String>, file: &Path, line: usize) -> Diagnostic {
    let mut d = Diagnostic::new(code, msg);
    d.file = Some(file.to_path_buf());
    d.line = Some(line);
    d
}

fn load_object(node: Arc<Node>, file: &Path, opts: &LoadOptions, out: &mut Loaded) {
    let line = node.pos.line;
    if !matches!(node.value, Value::Map(_)) {
        out.diagnostics.push(
            diag_at(
                Code::UnknownKind,
                format!(
                    "document is a {}, not a resource (an object with apiVersion and kind)",
                    node.value.type_name()
                ),
                file,
                line,
            )
            .hint("a resource starts with `apiVersion:` and `kind:`"),
        );
        return;
    }
    let api_version = node.get_str("apiVersion").unwrap_or("").to_string();
    let kind_name = node.get_str("kind").unwrap_or("").to_string();
    if kind_name.is_empty() || api_version.is_empty() {
        let missing = if kind_name.is_empty() {
            "kind"
        } else {
            "apiVersion"
        };
        let path = FieldPath::root().field(missing);
        out.diagnostics.push(
            diag_at(Code::UnknownKind, format!("{missing}: Required value"), file, node.locate(&path).line)
                .hint("every resource names its apiVersion and kind, e.g. `apiVersion: networking.istio.io/v1` and `kind: VirtualService`"),
        );
        return;
    }
    if kind_name == "List" || kind_name.ends_with("List") && api_version == "v1" {
        match node.get("items").map(|n| &n.value) {
            Some(Value::Seq(items)) => {
                for item in items {
                    load_object(Arc::new(item.clone()), file, opts, out);
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => out.diagnostics.push(diag_at(
                Code::WrongType,
                "items: expected a list",
                file,
                line,
            )),
        }
        return;
    }
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    let kind_line = node.locate(&FieldPath::root().field("kind")).line;
    let Some(kind) = Kind::from_name(&kind_name) else {
        if kind_name == "ConfigMap" && group.is_empty() {
            load_mesh_configmap(&node, file, out);
            return;
        }
        if !group.ends_with(".istio.io") && KUBERNETES_KINDS.contains(&kind_name.as_str()) {
            out.diagnostics.push(diag_at(
                Code::IgnoredKind,
                format!("{kind_name} ({api_version}) is not mesh configuration; skipped"),
                file,
                kind_line,
            ));
            return;
        }
        let mut d = diag_at(
            Code::UnknownKind,
            format!("unknown kind {kind_name:?} (apiVersion {api_version})"),
            file,
            kind_line,
        );
        d.hint = Some(match crate::de::suggest(&kind_name, &Kind::names()) {
            Some(s) => format!("did you mean {s:?}?"),
            None => format!("Weft reads {}", Kind::names().join(", ")),
        });
        out.diagnostics.push(d);
        return;
    };
    let meta_line = node.locate(&FieldPath::root().field("metadata")).line;
    // Metadata first: even a rejected resource must be identified.
    let mut meta: ObjectMeta = match node.get("metadata") {
        None => {
            out.diagnostics.push(
                diag_at(
                    Code::InvalidName,
                    "metadata.name: Required value",
                    file,
                    line,
                )
                .hint("add `metadata: {name: ...}`"),
            );
            return;
        }
        Some(m) => match from_node::<ObjectMeta>(m, FieldPath::root().field("metadata")) {
            Ok((meta, unknown)) => {
                for u in unknown {
                    out.diagnostics.push(unknown_field_diag(&u, file, None));
                }
                meta
            }
            Err(e) => {
                out.diagnostics
                    .push(de_error_diag(Code::WrongType, e, file, meta_line, None));
                return;
            }
        },
    };
    if meta.namespace.is_empty() {
        meta.namespace = opts.default_namespace.clone();
    }
    let key = ResourceKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    };
    let rref = Some(key.to_ref());
    let source = Source {
        file: file.to_path_buf(),
        line,
        auto_registered_from: None,
    };
    let before = out.diagnostics.len();
    let push = |out: &mut Loaded, mut d: Diagnostic| {
        d.resource = rref.clone();
        d.file = Some(file.to_path_buf());
        out.diagnostics.push(d);
    };
    if meta.name.is_empty() {
        let d = diag_at(
            Code::InvalidName,
            "metadata.name: Required value",
            file,
            meta_line,
        );
        push(out, d);
        return;
    }
    if !is_dns1123_subdomain(&meta.name) {
        let mut d = diag_at(
            Code::InvalidName,
            format!("metadata.name {:?} is not a valid name", meta.name),
            file,
            node.locate(&FieldPath::parse("metadata.name")).line,
        );
        d.hint = Some(
            "names are lowercase letters, digits, '-' and '.', starting and ending alphanumeric"
                .into(),
        );
        push(out, d);
    }
    if !is_dns1123_label(&meta.namespace) {
        let d = diag_at(
            Code::InvalidName,
            format!(
                "metadata.namespace {:?} is not a valid namespace name",
                meta.namespace
            ),
            file,
            node.locate(&FieldPath::parse("metadata.namespace")).line,
        );
        push(out, d);
    }
    if !kind.versions().contains(&version) || group != kind.group() {
        let mut d = diag_at(
            Code::UnsupportedVersion,
            format!("{kind} is not served as apiVersion {api_version:?}"),
            file,
            node.locate(&FieldPath::root().field("apiVersion")).line,
        );
        d.hint = Some(format!(
            "use one of: {}",
            kind.versions()
                .iter()
                .map(|v| format!("{}/{v}", kind.group()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        push(out, d);
    }
    for (k, _) in match &node.value {
        Value::Map(entries) => entries.as_slice(),
        _ => &[],
    } {
        if !matches!(
            k.name.as_str(),
            "apiVersion" | "kind" | "metadata" | "spec" | "status"
        ) {
            let mut d = diag_at(
                Code::UnknownField,
                format!("unknown field {:?}", k.name),
                file,
                k.pos.line,
            );
            d.path = Some(FieldPath::root().field(&k.name));
            d.hint = crate::de::suggest(
                &k.name,
                &["apiVersion", "kind", "metadata", "spec", "status"],
            )
            .map(|s| format!("did you mean {s:?}?"))
            .or_else(|| Some("a resource has apiVersion, kind, metadata and spec".into()));
            push(out, d);
        }
    }
    let spec_path = FieldPath::root().field("spec");
    // Fields set aside for type errors: validation does not report them again.
    let mut skip_below: Vec<FieldPath> = Vec::new();
    let spec = match node.get("spec") {
        None
        | Some(Node {
            value: Value::Null, ..
        }) => {
            let mut d =
                Diagnostic::new(Code::RequiredField, "Required value").at(spec_path.clone());
            d.line = Some(kind_line);
            push(out, d);
            Spec::default_for(kind)
        }
        Some(spec_node) => {
            match read_reporting_all(spec_node, &spec_path, |n, p| Spec::from_node(kind, n, p)) {
                Ok(read) => {
                    for u in &read.unknown {
                        push(out, unknown_field_diag(u, file, None));
                    }
                    for e in read.errors {
                        push(
                            out,
                            de_error_diag(Code::WrongType, e, file, spec_node.pos.line, None),
                        );
                    }
                    skip_below = read.dropped;
                    read.value
                }
                Err(e) => {
                    let d = de_error_diag(Code::WrongType, e, file, spec_node.pos.line, None);
                    push(out, d);
                    out.rejected.push(Rejected { key, source });
                    return;
                }
            }
        }
    };
    let mut v = Validator::new(&meta.namespace);
    spec.validate(&mut v);
    for issue in v.into_issues() {
        if skip_below.iter().any(|p| issue.path.starts_with(p)) {
            continue;
        }
        let mut d = Diagnostic::new(issue.code, issue.message).at(issue.path.clone());
        d.line = Some(node.locate(&issue.path).line);
        d.hint = issue.hint;
        push(out, d);
    }
    let rejected = out.diagnostics[before..]
        .iter()
        .any(|d| d.severity == Severity::Error);
    if rejected {
        out.rejected.push(Rejected { key, source });
    } else {
        out.resources.push(Resource {
            api_version,
            meta,
            spec,
            source,
            node,
        });
    }
}

/// Most type errors reported for one resource before giving up.
const MAX_TYPE_ERRORS: usize = 16;

/// A value read by [`read_reporting_all`], with what was wrong with it.
struct Read<T> {
    value: T,
    unknown: Vec<UnknownField>,
    /// Type errors, each at the field it is about.
    errors: Vec<DeError>,
    /// Fields set aside (read as unset) because of those errors.
    dropped: Vec<FieldPath>,
}

/// Deserializes `node` (at `path`) with `read`, reporting every type error
/// rather than the first: after each error the field at fault is set aside
/// (read as unset) and the node is read again, so one document yields all
/// its mistakes. `Err` only when an error can't be pinned to a field.
fn read_reporting_all<T>(
    node: &Node,
    path: &FieldPath,
    read: impl Fn(&Node, FieldPath) -> Result<(T, Vec<UnknownField>), DeError>,
) -> Result<Read<T>, DeError> {
    let mut node = std::borrow::Cow::Borrowed(node);
    let mut errors = Vec::new();
    let mut dropped = Vec::new();
    loop {
        match read(&node, path.clone()) {
            Ok((value, unknown)) => {
                return Ok(Read {
                    value,
                    unknown,
                    errors,
                    dropped,
                });
            }
            Err(e) => {
                // Set aside the innermost struct field holding the error.
                let field = e.path.as_ref().and_then(|p| p.up_to_last_field());
                let relative = field.as_ref().and_then(|f| f.strip_prefix(path));
                let removed = match relative {
                    Some(rel) if !rel.is_empty() && errors.len() < MAX_TYPE_ERRORS => {
                        node.to_mut().unset(&rel)
                    }
                    _ => false,
                };
                if !removed {
                    return Err(match errors.is_empty() {
                        true => e,
                        false => errors.swap_remove(0),
                    });
                }
                dropped.extend(field);
                errors.push(e);
            }
        }
    }
}

fn unknown_field_diag(
    u: &crate::de::UnknownField,
    file: &Path,
    resource: Option<crate::diag::ResourceRef>,
) -> Diagnostic {
    let name = match u.path.segments().last() {
        Some(crate::path::Seg::Field(n)) => n.clone(),
        _ => String::new(),
    };
    let mut d =
        Diagnostic::new(Code::UnknownField, format!("unknown field {name:?}")).at(u.path.clone());
    d.file = Some(file.to_path_buf());
    d.line = Some(u.pos.line);
    d.resource = resource;
    d.hint = u.suggestion.map(|s| format!("did you mean {s:?}?"));
    d
}

fn de_error_diag(
    code: Code,
    e: DeError,
    file: &Path,
    fallback_line: usize,
    resource: Option<crate::diag::ResourceRef>,
) -> Diagnostic {
    let code = if e.message.starts_with("Unsupported value") {
        Code::InvalidValue
    } else {
        code
    };
    let mut d = Diagnostic::new(code, e.message);
    d.path = e.path.filter(|p| !p.is_empty());
    d.file = Some(file.to_path_buf());
    d.line = Some(e.pos.map_or(fallback_line, |p| p.line));
    d.resource = resource;
    d.hint = e.hint;
    d
}

/// Reads MeshConfig from a ConfigMap (Istio's `istio` ConfigMap, key `mesh`).
fn load_mesh_configmap(node: &Node, file: &Path, out: &mut Loaded) {
    let name = node
        .get("metadata")
        .and_then(|m| m.get_str("name"))
        .unwrap_or("");
    let Some(mesh) = node.get("data").and_then(|d| d.get("mesh")) else {
        out.diagnostics.push(diag_at(
            Code::IgnoredKind,
            format!("ConfigMap {name:?} has no `mesh` key; skipped"),
            file,
            node.pos.line,
        ));
        return;
    };
    let Some(text) = mesh.value.scalar_text() else {
        out.diagnostics.push(diag_at(
            Code::WrongType,
            "data.mesh: expected a string of YAML",
            file,
            mesh.pos.line,
        ));
        return;
    };
    // Lines inside the string count from the line its content starts on
    // (the line after `mesh: |`, or the key's own line for a flow scalar).
    let offset = mesh.pos.line - 1;
    let src = Source {
        file: file.to_path_buf(),
        line: node.pos.line,
        auto_registered_from: None,
    };
    let namespace = node
        .get("metadata")
        .and_then(|m| m.get_str("namespace"))
        .unwrap_or("istio-system");
    let rref = crate::diag::ResourceRef {
        kind: "ConfigMap".into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    let locate = |mut d: Diagnostic| {
        d.file = Some(file.to_path_buf());
        d.line = d.line.map(|l| l + offset);
        d.resource = Some(rref.clone());
        let mut path = FieldPath::parse("data.mesh");
        for seg in d.path.iter().flat_map(|p| p.segments()) {
            path.push(seg.clone());
        }
        d.path = Some(path);
        d
    };
    match crate::mesh::parse_mesh(text) {
        Ok((config, diags)) => {
            out.mesh_rejected = diags.iter().any(Diagnostic::is_error);
            out.diagnostics.extend(diags.into_iter().map(locate));
            if !out.mesh_rejected {
                out.mesh = Some((config, src));
            }
        }
        Err(d) => {
            out.diagnostics.push(locate(*d));
            out.mesh_rejected = true;
        }
    }
}

/// Reads a MeshConfig file (`--mesh FILE`): plain MeshConfig YAML.
pub fn load_mesh_file(path: &Path) -> Result<(MeshConfig, Vec<Diagnostic>), Box<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut d = Diagnostic::new(Code::UnreadableFile, format!("cannot read: {e}"));
        d.file = Some(path.to_path_buf());
        Box::new(d)
    })?;
    let locate = |mut d: Diagnostic| {
        d.file = Some(path.to_path_buf());
        d
    };
    crate::mesh::parse_mesh(&text)
        .map(|(m, diags)| (m, diags.into_iter().map(locate).collect()))
        .map_err(|d| Box::new(locate(*d)))
}

/// Parses and validates a typed document fragment (MeshConfig) with the same
/// machinery as resources; `Err` when it cannot be read at all.
pub(crate) fn parse_fragment<T: serde::de::DeserializeOwned + Validate + Default>(
    text: &str,
    what: &str,
) -> Result<(T, Vec<Diagnostic>), Box<Diagnostic>> {
    let docs = parse_stream(text);
    let node = match docs.into_iter().next().map(|d| d.result) {
        None | Some(Ok(None)) => return Ok((T::default(), Vec::new())),
        Some(Ok(Some(node))) => node,
        Some(Err(e)) => {
            let mut d = Diagnostic::new(Code::SyntaxError, format!("{what}: {}", e.message));
            d.line = Some(e.pos.line);
            return Err(Box::new(d));
        }
    };
    let no_file = |mut d: Diagnostic| {
        d.file = None;
        d
    };
    let read = read_reporting_all(&node, &FieldPath::root(), |n, p| from_node::<T>(n, p)).map_err(
        |e| {
            Box::new(no_file(de_error_diag(
                Code::WrongType,
                e,
                Path::new(""),
                node.pos.line,
                None,
            )))
        },
    )?;
    let mut diags: Vec<Diagnostic> = read
        .unknown
        .iter()
        .map(|u| no_file(unknown_field_diag(u, Path::new(""), None)))
        .collect();
    diags.extend(read.errors.into_iter().map(|e| {
        no_file(de_error_diag(
            Code::WrongType,
            e,
            Path::new(""),
            node.pos.line,
            None,
        ))
    }));
    let mut v = Validator::at_root("");
    read.value.validate(&mut v);
    for issue in v.into_issues() {
        if read.dropped.iter().any(|p| issue.path.starts_with(p)) {
            continue;
        }
        let mut d = Diagnostic::new(issue.code, issue.message).at(issue.path.clone());
        d.line = Some(node.locate(&issue.path).line);
        d.hint = issue.hint;
        diags.push(d);
    }
    let value = read.value;
    Ok((value, diags))
}

/// Reports every resource defined twice (same kind, namespace and name) and
/// keeps only the first.
fn reject_duplicates(all: &mut Loaded) {
    let mut seen: HashMap<ResourceKey, Source> = HashMap::new();
    let mut keep = Vec::with_capacity(all.resources.len());
    for r in std::mem::take(&mut all.resources) {
        let key = r.key();
        if let Some(first) = seen.get(&key) {
            let mut d = diag_at(
                Code::DuplicateResource,
                format!("{key} is defined more than once"),
                &r.source.file,
                r.source.line,
            );
            d.resource = Some(key.to_ref());
            d.hint = Some(format!(
                "first defined at {}:{}; rename or remove one",
                first.file.display(),
                first.line
            ));
            all.diagnostics.push(d);
        } else {
            seen.insert(key, r.source.clone());
            keep.push(r);
        }
    }
    all.resources = keep;
}

#[cfg(test)]
mod tests;
