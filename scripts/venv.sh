# Sourced by scripts/demo and scripts/test: make .venv (installing python3-venv through apt-get
# when the interpreter lacks it) and install the project into it with the given extras.
ensure_venv() {
    local PY=${PYTHON:-python3}
    if [ ! -x .venv/bin/python ]; then
        if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
            local apt_get=(apt-get)
            [ "$(id -u)" -eq 0 ] || apt_get=(sudo apt-get)
            DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y --no-install-recommends python3-venv
        fi
        "$PY" -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$1"
}
