import threading, time
def a():
    t=time.time()
    while time.time()-t<1: pass
def b():
    t=time.time()
    while time.time()-t<1: pass
def w():
    while True: time.sleep(0.1)
threading.Thread(target=w, name="sleeper", daemon=True).start()
a(); b()
