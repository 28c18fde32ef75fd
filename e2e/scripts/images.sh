#!/usr/bin/env bash
# Builds the container images the local test node runs — the operator, the Pod sandbox
# ("pause") and aws-nuke for the reset Job — as OCI image-layout archives in e2e/kube/images/,
# without a registry or a container engine:
#
#   e2e/scripts/images.sh [operator|pause|aws-nuke]...   # default: all three
#   ctr -n k8s.io images import e2e/kube/images/dce-operator.tar
#
#   dce-operator.tar  localhost/dce-operator:<version>  the operator, statically linked
#   pause.tar         localhost/pause:e2e               e2e/kube/cmd/pause
#   aws-nuke.tar      localhost/aws-nuke:<version>      github.com/ekristen/aws-nuke/v3, as pinned
#                                                       by e2e/kube/aws-nuke/go.mod
#
# Each image is one layer with its binary (root-owned, 0755) and, for the operator and aws-nuke,
# the build machine's CA bundle, a passwd/group naming the non-root user and an nsswitch.conf.
# Layers and archives are reproducible (sorted, root-owned, mtime 0, gzip without a name or
# time), so the same binaries give the same digests. Test support only: the released image is
# the Dockerfile's.
#
# The operator is built for x86_64-unknown-linux-gnu with a static C runtime (the musl target
# may not be installed), with Cargo's `image` profile. Static glibc (2.34 and later) resolves
# names through /etc/hosts and DNS (/etc/resolv.conf, which the kubelet provides) without
# loading NSS modules; the images' /etc/nsswitch.conf names only those two sources.
#
# Idempotent and cheap when nothing changed: cargo and go rebuild incrementally, and an image
# whose inputs (its files and this script) match its stamp is not written again.
set -euo pipefail

script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
repo="$(cd "$(dirname "$script")/../.." && pwd)"
kube="$repo/e2e/kube"
out="${DCE_IMAGES_DIR:-$kube/images}"
build="$out/.build"
# A target dir of its own: this build shares no artifacts with the test build (another profile
# and target), and in its own dir it can run beside it (make test builds both at once).
target_dir="${CARGO_TARGET_DIR:-$repo/target}/image-build"
[[ "$target_dir" == /* ]] || target_dir="$repo/$target_dir"
rust_target=x86_64-unknown-linux-gnu
ca_bundle=/etc/ssl/certs/ca-certificates.crt
epoch=1970-01-01T00:00:00Z
media=application/vnd.oci

# The layer's entries: reproducible, root-owned.
tar_flags=(--format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0
    --no-acls --no-xattrs)

log() { echo "images: $*" >&2; }

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# A JSON string (the values here have no control characters).
json_string() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

# A JSON array of strings.
json_array() {
    local item sep="" json="["
    for item in "$@"; do
        json+="$sep$(json_string "$item")"
        sep=","
    done
    printf '%s]' "$json"
}

# Stores stdin as a blob of the layout in $1; prints its digest and size.
put_blob() {
    local layout=$1 tmp digest
    tmp="$(mktemp "$layout/blobs/sha256/.tmp.XXXXXX")"
    cat >"$tmp"
    digest="$(sha256 "$tmp")"
    mv "$tmp" "$layout/blobs/sha256/$digest"
    chmod 0644 "$layout/blobs/sha256/$digest"
    printf 'sha256:%s %s\n' "$digest" "$(stat -c %s "$layout/blobs/sha256/$digest")"
}

# oci_image ARCHIVE NAME:TAG CONFIG FILE...
# Writes an OCI image layout archive with one layer. CONFIG is the members of the image
# configuration's "config" object (JSON, without braces). Each FILE is SOURCE=PATH=MODE:
# SOURCE copied to PATH inside the image with MODE; parent directories are 0755.
oci_image() {
    local archive=$1 ref=$2 config=$3
    shift 3
    local tag=${ref##*:}
    local work="$build/work/${archive%.tar}"
    local rootfs="$work/rootfs" layout="$work/layout"
    rm -rf "$work"
    mkdir -p "$rootfs" "$layout/blobs/sha256"
    local spec source path mode
    for spec in "$@"; do
        IFS='=' read -r source path mode <<<"$spec"
        install -D -m "$mode" "$source" "$rootfs$path"
    done
    find "$rootfs" -mindepth 1 -type d -exec chmod 0755 {} +

    # The layer: its uncompressed digest is the config's diff_id, its gzip the blob.
    local top
    mapfile -t top < <(cd "$rootfs" && LC_ALL=C ls -A)
    tar "${tar_flags[@]}" -C "$rootfs" -cf "$work/layer.tar" "${top[@]}"
    local diff_id layer_digest layer_size unpacked
    diff_id="sha256:$(sha256 "$work/layer.tar")"
    unpacked="$(stat -c %s "$work/layer.tar")"
    read -r layer_digest layer_size < <(gzip -n -c "$work/layer.tar" | put_blob "$layout")
    rm -f "$work/layer.tar"

    local platform='"architecture":"amd64","os":"linux"'
    local json config_digest config_size
    json="{\"created\":\"$epoch\",$platform,\"config\":{$config}"
    json+=",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"$diff_id\"]}"
    json+=",\"history\":[{\"created\":\"$epoch\",\"created_by\":\"e2e/scripts/images.sh\"}]}"
    read -r config_digest config_size < <(printf '%s' "$json" | put_blob "$layout")

    local manifest_digest manifest_size
    json="{\"schemaVersion\":2,\"mediaType\":\"$media.image.manifest.v1+json\""
    json+=",\"config\":{\"mediaType\":\"$media.image.config.v1+json\""
    json+=",\"digest\":\"$config_digest\",\"size\":$config_size}"
    json+=",\"layers\":[{\"mediaType\":\"$media.image.layer.v1.tar+gzip\""
    json+=",\"digest\":\"$layer_digest\",\"size\":$layer_size}]}"
    read -r manifest_digest manifest_size < <(printf '%s' "$json" | put_blob "$layout")

    # containerd names the imported image after io.containerd.image.name.
    printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
    json="{\"schemaVersion\":2,\"mediaType\":\"$media.image.index.v1+json\""
    json+=",\"manifests\":[{\"mediaType\":\"$media.image.manifest.v1+json\""
    json+=",\"digest\":\"$manifest_digest\",\"size\":$manifest_size,\"platform\":{$platform}"
    json+=",\"annotations\":{\"io.containerd.image.name\":$(json_string "$ref")"
    json+=",\"org.opencontainers.image.ref.name\":$(json_string "$tag")}}]}"
    printf '%s' "$json" >"$layout/index.json"
    chmod 0644 "$layout/oci-layout" "$layout/index.json"

    tar "${tar_flags[@]}" -C "$layout" -cf "$out/$archive.tmp" oci-layout index.json blobs
    mv "$out/$archive.tmp" "$out/$archive"
    echo "$unpacked" >"$work/unpacked-size"
    rm -rf "$rootfs" "$layout"
    log "$archive: $ref ($manifest_digest)"
}

# image ARCHIVE NAME:TAG CONFIG FILE...: oci_image unless the stamp says the archive is current.
image() {
    local archive=$1 ref=$2 config=$3
    shift 3
    local spec inputs want stamp="$out/.${archive%.tar}.stamp"
    inputs="$ref $config $(sha256 "$script")"
    for spec in "$@"; do
        inputs+=" ${spec#*=} $(sha256 "${spec%%=*}")"
    done
    want="$(printf '%s' "$inputs" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$out/$archive" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "$archive: $ref up to date"
    else
        rm -f "$stamp"
        oci_image "$archive" "$ref" "$config" "$@"
        echo "$want" >"$stamp"
    fi
    built+=("$archive=$ref")
}

# etc_files USER ID: /etc/passwd and /etc/group naming the image's user (the runtime needs
# only the numbers; tools like to see names) and /etc/nsswitch.conf (host names from /etc/hosts,
# then DNS: the sources static glibc and Go have built in), as FILE specs in $etc_files.
etc_files() {
    local user=$1 id=$2
    printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%s:%s:%s:/:/sbin/nologin\n' \
        "$user" "$id" "$id" "$user" >"$build/passwd"
    printf 'root:x:0:\n%s:x:%s:\n' "$user" "$id" >"$build/group"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$build/nsswitch.conf"
    etc_files=("$build/passwd=/etc/passwd=0644" "$build/group=/etc/group=0644"
        "$build/nsswitch.conf=/etc/nsswitch.conf=0644")
}

operator() {
    command -v cargo >/dev/null || { log "cargo is needed for the operator image"; exit 1; }
    local version
    version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)"
    log "building the operator (cargo, profile image, static $rust_target)"
    # An explicit --target keeps build scripts and proc-macros dynamic; only the binary is static.
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
        cargo build --locked --profile image \
        --target "$rust_target" -p dce-operator --bin dce-operator)
    local binary="$target_dir/$rust_target/image/dce-operator"
    local config
    config="\"User\":\"65532:65532\",\"WorkingDir\":\"/\""
    config+=",\"Env\":$(json_array PATH=/usr/local/bin "SSL_CERT_FILE=$ca_bundle")"
    config+=",\"Entrypoint\":$(json_array /usr/local/bin/dce-operator)"
    # The REST API, and health + metrics.
    config+=",\"ExposedPorts\":{\"8000/tcp\":{},\"8080/tcp\":{}}"
    etc_files nonroot 65532
    image dce-operator.tar "localhost/dce-operator:$version" "$config" \
        "$binary=/usr/local/bin/dce-operator=0755" "$ca_bundle=$ca_bundle=0644" "${etc_files[@]}"
}

pause() {
    command -v go >/dev/null || { log "Go is needed for the pause image"; exit 1; }
    log "building pause (go)"
    (cd "$kube" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$build/bin/pause" \
        ./cmd/pause)
    image pause.tar localhost/pause:e2e \
        "\"User\":\"65535:65535\",\"WorkingDir\":\"/\",\"Entrypoint\":$(json_array /pause)" \
        "$build/bin/pause=/pause=0755"
}

aws_nuke() {
    command -v go >/dev/null || { log "Go is needed for the aws-nuke image"; exit 1; }
    local version
    version="$(cd "$kube/aws-nuke" && go list -m -f '{{.Version}}' github.com/ekristen/aws-nuke/v3)"
    log "building aws-nuke $version (go; a cold build takes several minutes)"
    # The release it reports, as its own release build stamps it (a module build has no tag).
    (cd "$kube/aws-nuke" && CGO_ENABLED=0 go build -trimpath \
        -ldflags="-s -w -X github.com/ekristen/aws-nuke/v3/pkg/common.SUMMARY=$version" \
        -o "$build/bin/aws-nuke" github.com/ekristen/aws-nuke/v3)
    # No entrypoint: the reset Job gives the whole command, starting with `aws-nuke` (on PATH).
    local config
    config="\"User\":\"65532:65532\",\"WorkingDir\":\"/\""
    config+=",\"Env\":$(json_array PATH=/usr/local/bin "SSL_CERT_FILE=$ca_bundle")"
    etc_files nonroot 65532
    image aws-nuke.tar "localhost/aws-nuke:$version" "$config" \
        "$build/bin/aws-nuke=/usr/local/bin/aws-nuke=0755" "$ca_bundle=$ca_bundle=0644" \
        "${etc_files[@]}"
}

wanted=("$@")
[[ ${#wanted[@]} -gt 0 ]] || wanted=(operator pause aws-nuke)
for name in "${wanted[@]}"; do
    case "$name" in
        operator | pause | aws-nuke) ;;
        *) echo "usage: $0 [operator|pause|aws-nuke]..." >&2; exit 64 ;;
    esac
done
[[ -r "$ca_bundle" ]] || { log "no CA bundle at $ca_bundle"; exit 1; }

mkdir -p "$build/bin" "$build/work"
built=()
start=$SECONDS
for name in "${wanted[@]}"; do
    case "$name" in
        operator) operator ;;
        pause) pause ;;
        aws-nuke) aws_nuke ;;
    esac
done

log "done in $((SECONDS - start)) s:"
for entry in "${built[@]}"; do
    archive=${entry%%=*}
    unpacked="$(cat "$build/work/${archive%.tar}/unpacked-size" 2>/dev/null || echo 0)"
    printf '  %-18s %-34s %8s archive, %8s unpacked\n' "$archive" "${entry#*=}" \
        "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$out/$archive")")" \
        "$(numfmt --to=iec-i --suffix=B "$unpacked")" >&2
done
