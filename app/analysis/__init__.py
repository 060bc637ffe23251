"""Analysis of exported responses (docs/analysis.md): `psychvis analyze` and the dashboard page.

Works on any table in the export format (`app.export_format`); no database, no HTTP.
"""

from app.analysis.load import (
    AnalysisInputError,
    AnalysisInputWarning,
    coerce_frame,
    read_responses,
)
from app.analysis.run import analyze_file
from app.analysis.stats import Analysis, analyze, analyze_frame
from app.export_format import parse_by

__all__ = [
    "Analysis",
    "AnalysisInputError",
    "AnalysisInputWarning",
    "analyze",
    "analyze_file",
    "analyze_frame",
    "coerce_frame",
    "parse_by",
    "read_responses",
]
