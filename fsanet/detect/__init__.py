"""Face detectors behind one interface: MTCNN (default), OpenCV SSD and Haar, BlazeFace (short, full)."""
