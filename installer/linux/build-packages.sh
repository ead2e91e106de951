#!/usr/bin/env bash
# Packages the frozen app (installer/freeze.sh) for Linux:
#   - huatuo-vision_VERSION_amd64.deb: the app in /opt/huatuo-vision, /usr/bin/huatuo, a desktop entry and icon;
#   - Huatuo_Vision-VERSION-x86_64.AppImage when appimagetool is available (APPIMAGETOOL or on PATH),
#     otherwise huatuo-vision-VERSION-linux-x86_64.tar.gz: the same AppDir (launcher AppRun, desktop file, icon).
#
#   installer/linux/build-packages.sh APP_DIR OUT_DIR VERSION     (prints each package's path)
#
# Environment: DEB_COMPRESSION (xz, the default, or gzip/zstd/none), HUATUO_MAINTAINER (the .deb's Maintainer
# field), SOURCE_DATE_EPOCH (file times inside the packages, for reproducible output).
set -euo pipefail
if [ $# -ne 3 ]; then
    echo "usage: $0 APP_DIR OUT_DIR VERSION" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
app=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
version=$3
name=huatuo-vision
maintainer=${HUATUO_MAINTAINER:-Huatuo Vision Desktop <packaging@huatuo-vision.invalid>}
epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}
icon_dir=$(mktemp -d)
stage=$(mktemp -d)
trap 'rm -rf "$stage" "$icon_dir"' EXIT

if [ ! -x "$app/huatuo" ]; then
    echo "$app/huatuo not found: run installer/freeze.sh first" >&2
    exit 1
fi
case "$version" in
    [0-9]*) ;;
    *) echo "version must start with a digit (Debian policy): $version" >&2; exit 2 ;;
esac
python=${PYTHON:-python3}
"$python" "$here/../make_icons.py" "$icon_dir" >/dev/null
desktop-file-validate "$here/huatuo-vision.desktop"

# The newest glibc symbol version any bundled binary needs: the oldest system the packages run on.
glibc=$(find "$app" -type f \( -name '*.so*' -o -name huatuo \) -exec objdump -T {} + 2>/dev/null \
        | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)

# --- .deb -----------------------------------------------------------------------------------------
deb_root=$stage/deb
install -d "$deb_root/opt" "$deb_root/usr/bin" "$deb_root/usr/share/applications" \
    "$deb_root/usr/share/icons/hicolor/256x256/apps" "$deb_root/DEBIAN"
cp -a "$app" "$deb_root/opt/$name"
install -m 0755 "$here/huatuo-launcher" "$deb_root/usr/bin/huatuo"
install -m 0644 "$here/huatuo-vision.desktop" "$deb_root/usr/share/applications/$name.desktop"
install -m 0644 "$icon_dir/$name.png" "$deb_root/usr/share/icons/hicolor/256x256/apps/$name.png"
installed_kb=$(du -sk --apparent-size "$deb_root" | cut -f1)
# Libraries the app takes from the system (everything else is inside /opt/huatuo-vision): OpenGL/EGL
# for Qt, the X and Wayland client libraries, fontconfig's configuration and the C library.
cat > "$deb_root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: amd64
Maintainer: $maintainer
Installed-Size: $installed_kb
Depends: libc6 (>= $glibc), libgl1, libegl1, libxcb1, libwayland-client0, libwayland-cursor0, fontconfig-config
Recommends: fonts-dejavu-core | fonts-liberation2
Section: science
Priority: optional
Description: offline medical-image assistant (HuatuoGPT-Vision on llama.cpp)
 Open DICOM studies and images, read them with standard windowing, and ask
 questions about them to HuatuoGPT-Vision running locally. No network, no
 cloud, no telemetry. For education and research; not for diagnosis.
EOF
find "$deb_root" -exec touch -h -d "@$epoch" {} +
deb=$out/${name}_${version}_amd64.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$deb_root" "$deb" >/dev/null
echo "$deb"

# --- AppImage, or the AppDir as a .tar.gz ---------------------------------------------------------
appdir=$stage/$name-$version
install -d "$appdir/usr/lib" "$appdir/usr/share/applications" "$appdir/usr/share/icons/hicolor/256x256/apps"
cp -a "$app" "$appdir/usr/lib/$name"
install -m 0755 "$here/AppRun" "$appdir/AppRun"
ln -s AppRun "$appdir/huatuo"
install -m 0644 "$here/huatuo-vision.desktop" "$appdir/$name.desktop"
install -m 0644 "$here/huatuo-vision.desktop" "$appdir/usr/share/applications/$name.desktop"
install -m 0644 "$icon_dir/$name.png" "$appdir/$name.png"
install -m 0644 "$icon_dir/$name.png" "$appdir/usr/share/icons/hicolor/256x256/apps/$name.png"
ln -s "$name.png" "$appdir/.DirIcon"
find "$appdir" -exec touch -h -d "@$epoch" {} +
appimagetool=${APPIMAGETOOL:-$(command -v appimagetool || true)}
if [ -n "$appimagetool" ]; then
    image=$out/Huatuo_Vision-$version-x86_64.AppImage
    ARCH=x86_64 "$appimagetool" --no-appstream "$appdir" "$image" >&2
    echo "$image"
else
    echo "appimagetool not found: packing the AppDir as a .tar.gz instead of an AppImage" >&2
    tarball=$out/$name-$version-linux-x86_64.tar.gz
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$stage" -cf - "$name-$version" \
        | gzip -n -6 > "$tarball"
    echo "$tarball"
fi
