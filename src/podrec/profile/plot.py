"""A listener's interest profile as a picture: a map of interests and their listening hours."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_profile(profile: dict[str, Any], path: Path) -> Path:
    """Left: each interest a bubble at its map position, sized by share, labelled with its
    name and top items. Right: when each interest is listened to, by hour of day."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("drawing a profile needs matplotlib: pip install matplotlib") from None
    interests = profile.get("interests", [])
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(13, 5.5), width_ratios=[3, 2])
    colours = plt.get_cmap("tab10")
    for i, it in enumerate(interests):
        ax.scatter(it["x"], it["y"], s=300 + 4000 * it["weight"], color=colours(i % 10),
                   alpha=0.45, edgecolors="black", linewidths=0.5)
        items = "\n".join(x["title"][:40] for x in it["items"][:3])
        ax.annotate(f"{it['label']} ({it['weight']:.0%})\n{items}", (it["x"], it["y"]),
                    fontsize=8, ha="center", va="center")
        if any(it["hours"]):
            hx.plot(range(24), it["hours"], color=colours(i % 10), label=it["label"],
                    marker="o", markersize=3)
    if not interests:
        ax.text(0.5, 0.5, "no history yet", ha="center", va="center", transform=ax.transAxes)
    ax.margins(0.35)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"Interests of {profile.get('user_id')} (bubble size = share)")
    hx.set_xlabel("hour of day")
    hx.set_ylabel("share of the interest's listening")
    hx.set_xticks(range(0, 24, 3))
    hx.set_title("When each interest is heard")
    if interests:
        hx.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
