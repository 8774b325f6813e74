#!/bin/sh
# mmdebstrap extract hook: run the image's dpkg with the host's libeatmydata (no fsync) during the build.
# $1: the image root, $2: the host's multiarch triplet. Undone by eatmydata-customize.sh.
set -eu
root=$1
libdir="$root/usr/lib/$2"
mkdir -p "$libdir"
cp -L "/usr/lib/$2/libeatmydata.so" "$libdir/libeatmydata-imagebuild.so"
chroot "$root" dpkg-divert --quiet --local --rename --divert /usr/bin/dpkg.imagebuild --add /usr/bin/dpkg
cat > "$root/usr/bin/dpkg" <<'WRAPPER'
#!/bin/sh
LD_PRELOAD="libeatmydata-imagebuild.so${LD_PRELOAD:+:$LD_PRELOAD}" exec /usr/bin/dpkg.imagebuild "$@"
WRAPPER
chmod 755 "$root/usr/bin/dpkg"
