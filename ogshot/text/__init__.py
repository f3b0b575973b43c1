"""Setting text: font runs, bidi order, Unicode line breaking and fitting. Nothing here draws.

The road from a string to lines:

1. the text is cut into grapheme clusters (UAX #29), each set in the first font of the chain
   that covers it (:meth:`FontSet.pick`); spaces and punctuation stay in the run around them;
2. line breaking follows UAX #14 (``uniseg``): CJK breaks between characters, other scripts at
   spaces; a unit wider than the line (a URL) is cut between grapheme clusters, never inside one,
   into the fewest pieces that fit, then evened out (:func:`cutting.even_cuts`);
3. :func:`fit` tries sizes from the box's maximum down (by bisection) until the text fits in its
   line limit; at the minimum size what does not fit is cut and ends in an ellipsis;
4. each line is ordered for display by the Unicode bidi algorithm (``python-bidi``), then split into
   runs of one font and one direction, which HarfBuzz shapes (the same shaping measures them here
   and places their glyphs when they are drawn: :mod:`ogshot.glyphs`).

Fitting returns values (:class:`Fitted`); work is bounded by the box's line count, not the length
of the text, so a 2,000-character title costs about what a short one does.
"""

from .clusters import clusters, normalise
from .fitting import Fitted, fit
from .setter import ELLIPSIS, Line, Run, Setter

__all__ = ["ELLIPSIS", "Fitted", "Line", "Run", "Setter", "clusters", "fit", "normalise"]
