"""The `sf explain` figure: image + region-attention heatmap, most attended words, forecast band, analogs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from sf.apply.predict import quantile_column
from sf.forecast import plots


def framed_image(path: Path, prep: dict) -> np.ndarray | None:
    """The image as the backbone saw it: letterboxed ('pad') or centre-cropped ('crop') to a square."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            bg = tuple(prep.get("background", (255, 255, 255)))
            if im.mode in ("RGBA", "LA", "P"):
                rgba = im.convert("RGBA")
                base = Image.new("RGBA", rgba.size, (*bg, 255))
                base.alpha_composite(rgba)
                im = base
            im = im.convert("RGB")
            s = int(prep.get("image_size", max(im.size)))
            w, h = im.size
            if prep.get("fit", "pad") == "crop":
                k = s / min(w, h)
                im = im.resize((max(s, round(w * k)), max(s, round(h * k))))
                left, top = (im.width - s) // 2, (im.height - s) // 2
                return np.asarray(im.crop((left, top, left + s, top + s)))
            k = s / max(w, h)
            im = im.resize((max(1, round(w * k)), max(1, round(h * k))))
            canvas = Image.new("RGB", (s, s), bg)
            canvas.paste(im, ((s - im.width) // 2, (s - im.height) // 2))
            return np.asarray(canvas)
    except (OSError, ValueError):
        return None


def draw(exp, path: Path, prep: dict, title: str) -> Path:
    """Write the figure of an `sf.apply.explain.Explanation` to `path` (PNG, atomically)."""
    plt = plots.plt
    n_an = max(len(exp.analogs), 1)
    # Fixed margins: tight_layout and constrained layout both gave up on this grid (and warned on every
    # `sf explain`); the panels' sizes are known, so the spacing is too.
    fig = plt.figure(figsize=(max(13, 2.8 * n_an), 8.2))
    rows = fig.add_gridspec(2, 1, height_ratios=(1.25, 1), left=0.04, right=0.98, top=0.86, bottom=0.06, hspace=0.42)
    upper = rows[0].subgridspec(1, 3, width_ratios=(1.1, 1, 1.2), wspace=0.55)
    _image_panel(fig, fig.add_subplot(upper[0]), exp, prep)
    _words_panel(fig.add_subplot(upper[1]), exp)
    _forecast_panel(fig.add_subplot(upper[2]), exp)
    _analog_panels(fig, rows, n_an, exp, prep)
    fig.suptitle(f"{title}\nanalogs: {exp.similarity}", fontsize=10)
    return plots.save(fig, path)


def _image_panel(fig, ax, exp, prep: dict) -> None:
    """The image as the store framed it, with the share of word→region attention over its grid."""
    img = framed_image(exp.image, prep) if exp.image is not None and exp.has_image else None
    if img is not None:
        ax.imshow(img)
        if exp.regions is not None:
            s = img.shape[0]
            hm = ax.imshow(exp.regions, cmap="inferno", alpha=0.5, extent=(0, s, s, 0), interpolation="nearest")
            fig.colorbar(hm, ax=ax, fraction=0.046, pad=0.02, label="share of word→region attention")
            gh, gw = exp.regions.shape
            for k in range(1, gh):
                ax.axhline(k * s / gh, color="w", lw=0.3, alpha=0.6)
            for k in range(1, gw):
                ax.axvline(k * s / gw, color="w", lw=0.3, alpha=0.6)
        ax.set_title(f"image, {'x'.join(map(str, exp.regions.shape))} region attention" if exp.regions is not None
                     else "image (this fusion has no region map)", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no image" if not exp.has_image else "image not readable here", ha="center", va="center")
    ax.set_xticks([])
    ax.set_yticks([])


def _words_panel(ax, exp) -> None:
    if exp.words:
        words = exp.words[::-1]
        ax.barh(range(len(words)), [s for _, s in words], color="C0")
        ax.set_yticks(range(len(words)), [w for w, _ in words], fontsize=9)
        ax.set_xlabel("share of region→word attention")
    else:
        ax.text(0.5, 0.5, "no description" if not exp.has_text else "no word attention in this model",
                ha="center", va="center")
        ax.set_yticks([])
    wrapped = exp.text if len(exp.text) < 90 else exp.text[:87] + "..."
    ax.set_title(f"most attended words\n\"{wrapped}\"", fontsize=8)


def _forecast_panel(ax, exp) -> None:
    steps = np.arange(len(exp.forecast))
    if exp.band is not None:
        ax.fill_between(steps, exp.band[:, 0], exp.band[:, 1], color="C1", alpha=0.25, lw=0,
                        label=f"{quantile_column(exp.quantiles[0])}–{quantile_column(exp.quantiles[-1])}")
    ax.plot(steps, exp.forecast, "C1-", lw=2, label="forecast")
    if exp.actual is not None:
        ax.plot(steps[exp.actual_mask], exp.actual[exp.actual_mask], "k.-", label="actual")
    if exp.reference is not None:
        ax.plot(steps, exp.reference, color="0.6", ls=":", label="training mean curve")
    ax.set(xlabel="step since release", ylabel="units", title="forecast")
    ax.legend(fontsize=8)


def _analog_panels(fig, rows, n_an: int, exp, prep: dict) -> None:
    """One panel per analog: its real sales beside this forecast, on a shared scale, with its thumbnail."""
    if not exp.analogs:
        ax = fig.add_subplot(rows[1])
        ax.axis("off")
        ax.text(0.5, 0.5, "no analogs (training data or store not at hand)", ha="center", va="center")
        return
    lower = rows[1].subgridspec(1, max(n_an, 4), wspace=0.3)
    steps = np.arange(len(exp.forecast))
    top = max([float(np.max(exp.forecast, initial=0))] + [float(np.max(a.y, initial=0)) for a in exp.analogs])
    for j, a in enumerate(exp.analogs):
        ax = fig.add_subplot(lower[j])
        ax.plot(steps[a.mask], a.y[a.mask], "k.-", label="its sales")
        ax.plot(steps, exp.forecast, "C1--", lw=1, alpha=0.7, label="this forecast")
        ax.set_ylim(0, top * 1.08 + 1e-9)
        ax.set_title(f"{a.product_id} (sim {a.similarity:.2f})", fontsize=8)
        ax.tick_params(labelsize=7)
        thumb = framed_image(a.image, prep) if a.image is not None else None
        if thumb is not None:
            inset = ax.inset_axes((0.62, 0.55, 0.38, 0.45))
            inset.imshow(thumb)
            inset.axis("off")
        if j == 0:
            ax.legend(fontsize=7, loc="lower left")
