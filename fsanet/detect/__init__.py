"""Face detectors behind one interface: BlazeFace (the scan, the default; short; full), MTCNN, SSD, Haar."""
