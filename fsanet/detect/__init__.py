"""Face detectors behind one interface: BlazeFace scan (default), MTCNN, OpenCV SSD and Haar, BlazeFace
(short, full)."""
