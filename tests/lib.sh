# Shared by the shell tools under tests/: where the cache lives, logging.
# Sourced, not run.

# Everything built outside the repo (kernels, bindgen, initramfs parts) lives
# here; deleting it is always safe, it only costs a rebuild.
CACHE=${EPT_SAMPLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ept-sampler}
mkdir -p "$CACHE"

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "$*"; exit 1; }
