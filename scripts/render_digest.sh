#!/usr/bin/env bash
# Render a digest's HTML to PNG with headless Chromium, to look at it as a reader would.
#   monitor digest --preview --html /tmp/digest.html
#   scripts/render_digest.sh /tmp/digest.html /tmp/digest.png        # desktop, 800 px wide
#   scripts/render_digest.sh /tmp/digest.html /tmp/phone.png 390     # a narrow phone screen
# Needs Debian's chromium package (apt-get install chromium). Nothing is fetched from outside:
# the digest has no external resources and the network is switched off for the render.
set -euo pipefail
html=${1:?usage: render_digest.sh DIGEST.html OUT.png [WIDTH]}
png=${2:?usage: render_digest.sh DIGEST.html OUT.png [WIDTH]}
width=${3:-800}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --proxy-server='http://127.0.0.1:9' --proxy-bypass-list='<-loopback>' \
    --window-size="${width},2400" --screenshot="$(realpath -m "$png")" \
    "file://$(realpath "$html")" 2>/dev/null
echo "wrote $png"
