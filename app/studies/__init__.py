"""Studies: finding DICOM and image files, grouping them, and turning their pixels into what is shown. Qt-free."""
