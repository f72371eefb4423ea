"""Fold every code cell tagged `solution` behind a "Show solution" dropdown.

Chapter authors tag a solution cell `solution` and nothing else. myst-nb already folds cells tagged
`hide-cell` into a <details> element; this extension gives `solution` cells the same treatment, with
prompts that say what is hidden, before myst-nb's own post-transform builds the dropdown.
"""
from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

TAG = "solution"


class FoldSolutions(SphinxPostTransform):
    default_priority = 198  # just before myst_nb.sphinx_.HideInputCells (199)
    formats = ("html",)

    def run(self, **kwargs):
        for node in self.document.findall(nodes.container):
            tags = node.get("cell_metadata", {}).get("tags", [])
            if node.get("nb_element") == "cell_code" and TAG in tags:
                node["hide_mode"] = "all"  # input and output both folded
                node["prompt_show"] = "Show solution"
                node["prompt_hide"] = "Hide solution"


def setup(app):
    app.add_post_transform(FoldSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
