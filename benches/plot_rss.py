"""Plots prism-render's peak RSS against fleet size as an SVG, from the rss.tsv that
benches/compare.sh writes (shards, objects, output_bytes, wall_s, cpu_s, max_rss_kb).

    python3 benches/plot_rss.py target/bench-compare/rss.tsv > rss.svg

Both axes are logarithmic; the output's own size is drawn for scale: a render that held its
output would stay above that line.
"""

import math
import sys

W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 30, 50


def main(path):
    rows = []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            cells = dict(zip(header, line.rstrip("\n").split("\t")))
            rows.append(
                (
                    int(cells["shards"]),
                    int(cells["max_rss_kb"]) / 1024,
                    int(cells["output_bytes"]) / 1048576,
                )
            )
    rows.sort()
    xs = [r[0] for r in rows]
    ys = [v for r in rows for v in r[1:]]
    x0, x1 = math.log10(min(xs)), math.log10(max(xs)) if max(xs) > min(xs) else math.log10(min(xs)) + 1
    y0 = math.floor(math.log10(max(min(ys), 0.01)))
    y1 = math.ceil(math.log10(max(ys)))
    if y1 == y0:
        y1 += 1

    def px(x):
        return LEFT + (math.log10(x) - x0) / (x1 - x0) * (W - LEFT - RIGHT)

    def py(y):
        return H - BOTTOM - (math.log10(max(y, 0.01)) - y0) / (y1 - y0) * (H - TOP - BOTTOM)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">prism-render: peak RSS against fleet size</text>',
    ]
    for e in range(y0, y1 + 1):
        y = py(10**e)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{10**e:g} MiB</text>')
    for x in xs:
        out.append(f'<line x1="{px(x):.1f}" y1="{TOP}" x2="{px(x):.1f}" y2="{H - BOTTOM}" stroke="#eee"/>')
        out.append(f'<text x="{px(x):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{x:,}</text>')
    out.append(f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">shards (10 PrismNamespaces each; log scale)</text>')
    for index, colour, dash, label in ((1, "#1f77b4", "", "peak RSS"), (2, "#888", "6,4", "output YAML")):
        points = " ".join(f"{px(r[0]):.1f},{py(r[index]):.1f}" for r in rows)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        for r in rows:
            out.append(f'<circle cx="{px(r[0]):.1f}" cy="{py(r[index]):.1f}" r="3" fill="{colour}"/>')
            if index == 1:
                out.append(f'<text x="{px(r[0]) + 6:.1f}" y="{py(r[index]) - 6:.1f}">{r[index]:.1f}</text>')
        ly = TOP + 14 + (index - 1) * 16
        out.append(f'<line x1="{LEFT + 10}" y1="{ly - 4}" x2="{LEFT + 34}" y2="{ly - 4}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{LEFT + 40}" y="{ly}">{label}</text>')
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
