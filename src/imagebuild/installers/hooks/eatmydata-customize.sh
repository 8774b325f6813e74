#!/bin/sh
# mmdebstrap customize hook: undo eatmydata-extract.sh, leaving no trace in the image.
set -eu
root=$1
libdir="$root/usr/lib/$2"
rm -f "$root/usr/bin/dpkg"
chroot "$root" dpkg-divert --quiet --local --rename --divert /usr/bin/dpkg.imagebuild --remove /usr/bin/dpkg
# ldconfig may have made a soname link to our copy; the image's own libeatmydata1, if any, is left alone.
for link in "$libdir"/libeatmydata.so*; do
    if [ -L "$link" ] && [ "$(readlink "$link")" = libeatmydata-imagebuild.so ]; then
        rm -f "$link"
    fi
done
rm -f "$libdir/libeatmydata-imagebuild.so"
