"""``make quickstart``: the library's main job.

Until the 2-D training quickstart lands (issue: 2D top-down pipeline), it prints the efficiency table of
the TokenPose/PPT zoo: our parameter and MAC counts beside the paper's figures.
"""

from __future__ import annotations

from posetokens.engine.zoo import efficiency_table
from posetokens.registry import list_models


def main() -> None:
    """Print the zoo efficiency table."""
    print("posetokens zoo: TokenPose / PPT (batch 1, input at the model's size)\n")
    print(efficiency_table(list_models("tokenpose") + list_models("ppt")))


if __name__ == "__main__":
    main()
