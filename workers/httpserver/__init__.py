"""sockhop's HTTP/1.1 server side, run by gunicorn as its worker class.

parser.py and response.py are sans-IO (bytes in, bytes out); connection.py
drives one client socket; worker.py plugs it into gunicorn's gevent worker.
"""
