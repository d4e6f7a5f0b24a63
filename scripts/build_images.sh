#!/usr/bin/env bash
# Make the local images that the tests and the demo use. There is no registry on these
# machines, so images are imported from a root filesystem we assemble ourselves.
#   busybox:local   Debian's static busybox with its applets as symlinks (sh, sleep, httpd, nc, wget)
set -euo pipefail

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

if ! image_exists busybox:local; then
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc" "$rootfs/www" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
    done
    echo 'root:x:0:0:root:/:/bin/sh' >"$rootfs/etc/passwd"
    echo 'root:x:0:' >"$rootfs/etc/group"
    echo 'hello from busybox:local' >"$rootfs/www/index.html"
    chmod 1777 "$rootfs/tmp"
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - busybox:local >/dev/null
    echo "build_images: made busybox:local" >&2
fi
